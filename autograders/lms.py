"""Grades in the form a learning platform imports: Canvas' gradebook CSV and Moodle's CSV grade import, with the
platform's own roster to tell which of its students handed in which submission.

Canvas ("How do I import grades in the Gradebook?", Instructure's Instructor Guide,
https://community.canvaslms.com/t5/Instructor-Guide/How-do-I-import-grades-in-the-Gradebook/ta-p/807; the
gradebook export it starts from has the same columns): the columns Student, ID, SIS User ID, SIS Login ID and
Section, then one column per assignment, named "Name (assignment id)" for an assignment Canvas knows or by
name alone for a new one; the second row, "Points Possible", gives each assignment's points. Canvas matches a
row by its ID, SIS User ID or SIS Login ID and ignores the Section's value, but the column must be there (as
Ohio State's Carmen guide and PrairieLearn's tests of the import, issue #4547, found).

Moodle ("Grade import", https://docs.moodle.org/en/Grade_import; the header of Moodle's own test of it,
grade/import/csv/tests/load_data_test.php): the import reads the same CSV as the grade export, whose columns
are "First name", "Last name", "ID number", Institution, Department, "Email address" and one per grade item;
on the import page the teacher maps one column to the user ("Email address" to useremail, "ID number" to
useridnumber, or a username column to username) and each grade column to a grade item. This file has
"First name", "Last name", "ID number", "Email address" and "Username", then one column per exercise.

The roster is the CSV the platform exports (Canvas: the gradebook export; Moodle: the participants or grades
export). A roster row and a submission (named after its file or folder, as `course grade` named it) belong
together when the submission's name is the row's login (SIS Login ID, Username), ID (SIS User ID, ID number,
ID), email address or the part of it before the @, or the student's name in either order. Every roster row is
written, with an empty cell for an exercise without a result; every submission without a roster row is
reported, never dropped in silence.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from pathlib import Path

from autograders.course import CourseError

CANVAS_COLUMNS = ["Student", "ID", "SIS User ID", "SIS Login ID", "Section"]
MOODLE_COLUMNS = ["First name", "Last name", "ID number", "Email address", "Username"]
POINTS_POSSIBLE = "Points Possible"
_ASSIGNMENT_ID = re.compile(r"^(.*\S)\s*\((\d+)\)$")  # Canvas' "ex01 (123456)"

# The roster's columns that can name a student, by how surely: a login or an ID first, then email, then name.
LOGINS = ("sis login id", "username", "login id", "login")
IDS = ("sis user id", "id number", "student id", "id", "student number")
EMAILS = ("email address", "email", "e-mail")


@dataclass
class Student:
    """One roster row: what the platform calls the student, and the names a submission may carry."""

    fields: dict[str, str]  # the row, by its original column names
    keys: list[tuple[int, str]] = field(default_factory=list)  # (rank: 0 login or ID, 1 email, 2 name), lower case

    def get(self, *names: str) -> str:
        """The first of these columns (any case) that has a value in the row."""
        by_name = {k.strip().lower(): v for k, v in self.fields.items() if v}
        return next((by_name[n.lower()] for n in names if n.lower() in by_name), "")


@dataclass
class Roster:
    students: list[Student]
    assignment_columns: dict[str, str]  # exercise -> the roster's own column for it ("ex01 (123456)")


@dataclass
class Matched:
    """Which roster row holds which submissions, and what could not be matched."""

    rows: list[tuple[Student, list[str]]]  # every roster row, with the names of its submissions (none: [])
    unmatched: list[str]  # submissions with no roster row
    ambiguous: list[str]  # "name: why" for submissions that fit several rows

    def scores(self, grades: dict[str, dict[str, float]], exercises: list[str]) -> tuple[list[dict[str, float]], list[str]]:
        """Each row's score per exercise; and "who: why" where two of a row's submissions scored the same exercise
        (that cell is left empty: which one counts is the instructor's call)."""
        rows, conflicts = [], []
        for student, names in self.rows:
            scores = {}
            for exercise in exercises:
                found = {name: grades[name][exercise] for name in names if exercise in grades.get(name, {})}
                if len(found) == 1:
                    scores[exercise] = next(iter(found.values()))
                elif found:
                    conflicts.append(f"{_display(student)}: {exercise} handed in as {' and '.join(sorted(found))}")
            rows.append(scores)
        return rows, conflicts


def _clean(text: str) -> str:
    """A name as a submission's file name gives it: lower case, runs of other characters as one underscore."""
    return re.sub(r"[^a-z0-9.-]+", "_", text.strip().lower()).strip("._")


def _account_keys(value: str) -> list[str]:
    """A login, ID or email as a submission's name can spell it: cleaned as a file name is, and for an email-like
    login (alice@uni.example) also its local part (alice), since a file name rarely keeps the @."""
    keys = {_clean(value)} | ({_clean(value.split("@")[0])} if "@" in value else set())
    return sorted(k for k in keys if k)


def _name_keys(first: str, last: str, full: str) -> set[str]:
    names = set()
    if "," in full:  # Canvas: "Last, First"
        last_part, _, first_part = full.partition(",")
        first, last = first or first_part.strip(), last or last_part.strip()
    elif full and not (first or last):
        names.add(_clean(full))
    if first and last:
        for a, b in ((first, last), (last, first)):
            names |= {_clean(f"{a}{separator}{b}") for separator in (" ", ".", "-", "")}
    return {n for n in names if n}


def read_roster(path: Path) -> Roster:
    """The LMS's CSV export: its students (a Canvas export's "Points Possible" row and test student left out)."""
    if not path.is_file():
        raise CourseError(f"no roster at {path}: export it from the learning platform (Canvas: Grades > Export; "
                          f"Moodle: Participants > Download table data) and give its path.")
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            rows = list(csv.DictReader(f))
    except (UnicodeDecodeError, csv.Error) as error:
        raise CourseError(f"the roster {path} is not a CSV file in UTF-8: {error}") from None
    columns = {c.strip().lower() for c in (rows[0].keys() if rows else [])}
    known = set(LOGINS) | set(IDS) | set(EMAILS) | {"student", "first name", "last name", "name"}
    if not columns & known:
        raise CourseError(f"the roster {path} has none of the columns that name a student (SIS Login ID, Username, "
                          f"ID number, Email address, Student, First name and Last name): is it the platform's export?")
    students = []
    for row in rows:
        row = {(k or "").strip(): (v or "").strip() for k, v in row.items() if k is not None}
        name = row.get("Student", "") or row.get("Name", "")
        if name.strip().lower() in ("points possible", "student, test", "test student"):
            continue
        student = Student(row)
        for value in (student.get(c) for c in LOGINS + IDS):
            if value:
                student.keys += [(0, key) for key in _account_keys(value)]
        email = student.get(*EMAILS)
        if email:
            student.keys += [(1, key) for key in _account_keys(email)]
        names = _name_keys(student.get("first name"), student.get("last name"), name)
        student.keys += [(2, n) for n in sorted(names)]
        if student.keys:
            students.append(student)
    headers = [h.strip() for h in (rows[0].keys() if rows else []) if h]
    assignments = {}
    for header in headers:
        found = _ASSIGNMENT_ID.match(header)
        if found:
            assignments[found.group(1)] = header
    return Roster(students, assignments)


def match(roster: Roster, submissions: list[str]) -> Matched:
    """Give each submission name the roster row it names, the surest kind of key first (a student may have handed
    in exercises under several names); a name that fits two rows goes to neither, and is reported."""
    owner: dict[str, int] = {}
    ambiguous = []
    for rank in (0, 1, 2):
        for name in sorted(set(submissions) - set(owner) - {a.split(":")[0] for a in ambiguous}):
            fits = [i for i, s in enumerate(roster.students) if (rank, _clean(name)) in s.keys]
            if len(fits) == 1:
                owner[name] = fits[0]
            elif len(fits) > 1:
                ambiguous.append(f"{name}: fits {len(fits)} roster rows ("
                                 + ", ".join(_display(roster.students[i]) for i in fits[:3]) + ")")
    unmatched = sorted(set(submissions) - set(owner) - {a.split(":")[0] for a in ambiguous})
    rows = [(s, sorted(name for name, i in owner.items() if i == row)) for row, s in enumerate(roster.students)]
    return Matched(rows, unmatched, sorted(ambiguous))


def _display(student: Student) -> str:
    return student.get("student", "name") or " ".join(filter(None, (student.get("first name"), student.get("last name")))) \
        or student.keys[0][1]


def _points(score: float | None) -> str:
    return "" if score is None else f"{score:g}"


def _inert(cells: list) -> list[str]:
    """Identity cells a spreadsheet will not run: a leading = + - @, tab or CR makes Excel and Sheets read a
    formula (a roster's names are the students' own words; a submission's name is its file name), so such a
    cell is written with a leading apostrophe, as OWASP's advice on CSV injection says."""
    return [f"'{c}" if isinstance(c, str) and c[:1] in ("=", "+", "-", "@", "\t", "\r") else c for c in cells]


def write_canvas(path: Path, exercises: dict[str, float], grades: dict[str, dict[str, float]], roster: Roster | None,
                 matched: Matched | None) -> None:
    """Canvas' gradebook import: identity columns, a column per exercise, and the Points Possible row.

    exercises: exercise -> points possible; grades: submission name -> exercise -> score.
    """
    columns = [(roster.assignment_columns.get(e, e) if roster else e) for e in exercises]
    with path.open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(CANVAS_COLUMNS + columns)
        out.writerow([POINTS_POSSIBLE, "", "", "", ""] + [_points(p) for p in exercises.values()])
        if matched is None:  # no roster: the submission's name stands in for the SIS Login ID
            for name in sorted(grades):
                out.writerow(_inert([name, "", "", name, ""]) + [_points(grades[name].get(e)) for e in exercises])
            return
        for (student, _), scores in zip(matched.rows, matched.scores(grades, list(exercises))[0]):
            identity = [student.get("student", "name") or _display(student), student.get("id"),
                        student.get("sis user id"), student.get("sis login id", "username", "login id"), student.get("section")]
            out.writerow(_inert(identity) + [_points(scores.get(e)) for e in exercises])


def write_moodle(path: Path, exercises: dict[str, float], grades: dict[str, dict[str, float]], roster: Roster | None,
                 matched: Matched | None) -> None:
    """Moodle's CSV grade import: the user's columns, then a column per exercise (map one to a grade item each)."""
    with path.open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(MOODLE_COLUMNS + list(exercises))
        if matched is None:  # no roster: the submission's name stands in for the Moodle username
            for name in sorted(grades):
                out.writerow(_inert(["", "", "", "", name]) + [_points(grades[name].get(e)) for e in exercises])
            return
        for (student, _), scores in zip(matched.rows, matched.scores(grades, list(exercises))[0]):
            first, last = student.get("first name"), student.get("last name")
            full = student.get("student", "name")
            if not (first or last) and "," in full:
                last, _, first = (part.strip() for part in full.partition(","))
            identity = [first, last, student.get("id number", "sis user id", "id"), student.get(*EMAILS),
                        student.get("username", "sis login id", "login id")]
            out.writerow(_inert(identity) + [_points(scores.get(e)) for e in exercises])
