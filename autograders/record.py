"""Record what the judge decided: nbgrader's gradebook, the graded notebook, and one JSON file per student.

The grader's process is the only writer. The gradebook's scores come from nbgrader's own
SaveAutoGrades run on the graded notebook (a test cell that holds an error scores 0), so stock
nbgrader tools (formgrader, `nbgrader export`, `nbgrader generate_feedback`) see the same grades.
The instructor's word lives beside the results and outlives every later `course grade`: decisions on
review flags in reviews/<exercise>.json, manual scores of test cells in manual/<exercise>.json (set with
`course score`, or in nbgrader's formgrader, whose scores are adopted at the next grading).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import nbformat
from nbgrader.preprocessors import SaveAutoGrades

from autograders import results
from autograders.course import Course, Exercise
from autograders.results import Result

# What nbgrader runs on the graded notebook, as its `autograde` converter does after executing it.
SCORE = [SaveAutoGrades]


def record(course: Course, exercise: Exercise, result: Result, notebook: nbformat.NotebookNode, submitted: Path,
           digest: str) -> Result:
    """Write the grades, the graded notebook (safe to hand back) and the results JSON; return the result."""
    result.submitted, result.sha256 = str(submitted), digest
    student = result.student
    resources = {"nbgrader": {"assignment": exercise.name, "notebook": exercise.notebook_id, "student": student,
                              "db_url": course.db_url}}
    with warnings.catch_warnings():  # nbgrader's own SQLAlchemy usage warns about autoflush; harmless
        warnings.simplefilter("ignore")
        with course.gradebook() as gradebook:
            gradebook.update_or_create_student(student)
            gradebook.update_or_create_submission(exercise.name, student)
        for preprocessor in SCORE:
            preprocessor().preprocess(notebook, resources)
    if result.manual:  # nbgrader keeps an earlier manual_score; ours is set again in case the gradebook lost it
        _gradebook_manual(course, exercise, student,
                          {grade_id: cell.score for grade_id, cell in result.cells.items() if cell.manual})
    path = course.autograded_notebook(student, exercise)
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, path)
    results.write(course.results_folder(exercise.name) / f"{student}.json", result)
    return result


def rewrite(course: Course, exercise: Exercise, result: Result) -> None:
    """Store a kept result whose manual scores changed: the results JSON, and the gradebook's manual scores."""
    _gradebook_manual(course, exercise, result.student,
                      {grade_id: cell.score if cell.manual else None for grade_id, cell in result.cells.items()})
    results.write(course.results_folder(exercise.name) / f"{result.student}.json", result)


def record_not_graded(course: Course, exercise: Exercise, student: str, problem: str, submitted: Path, digest: str) -> Result:
    """A zero with the reason; an earlier grade must not outlive the submission that replaced it."""
    from nbgrader.api import MissingEntry

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with course.gradebook() as gradebook:
            gradebook.update_or_create_student(student)
            try:
                gradebook.remove_submission(exercise.name, student)
            except MissingEntry:
                pass
    result = Result(student, 0.0, exercise.max_score, problem, submitted=str(submitted), sha256=digest)
    results.write(course.results_folder(exercise.name) / f"{student}.json", result)
    return result


def previous(course: Course, exercise: Exercise, student: str, digest: str, decided: dict[str, str]) -> Result | None:
    """The recorded result of this very submission, if a batch already graded it under the instructor's present
    decisions on its review flags (`decided`: flag id -> decision), for --resume."""
    found = results.read(course.results_folder(exercise.name) / f"{student}.json")
    if found is None or found.sha256 != digest:
        return None
    if any(flag.decision != decided.get(flag.id, "pending") for flag in found.flags):
        return None  # decided since: the judge must weigh the flags again
    found.resumed = True
    return found


# ---- the instructor's decisions on review flags


def _decisions_file(course: Course, exercise: str) -> Path:
    return course.work / "reviews" / f"{exercise}.json"


def decisions(course: Course, exercise: str) -> dict[str, dict[str, str]]:
    """student -> flag id -> "accepted" or "rejected"."""
    try:
        return json.loads(_decisions_file(course, exercise).read_text())
    except (OSError, ValueError):
        return {}


def decide(course: Course, exercise: str, student: str, flag_ids: list[str], decision: str) -> None:
    """Record the instructor's decision on the given flags of a student's submission."""
    if decision not in ("accepted", "rejected", "pending"):
        raise ValueError(f"a decision is accepted, rejected or pending, not {decision!r}")
    everything = decisions(course, exercise)
    mine = everything.setdefault(student, {})
    for flag_id in flag_ids:
        if decision == "pending":
            mine.pop(flag_id, None)
        else:
            mine[flag_id] = decision
    path = _decisions_file(course, exercise)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(everything, indent=1, sort_keys=True))


# ---- the instructor's manual scores: coursework/manual/<exercise>.json, mirrored in the gradebook

FORMGRADER = "set in nbgrader's formgrader"


def _manual_file(course: Course, exercise: str) -> Path:
    return course.work / "manual" / f"{exercise}.json"


SET_ASIDE = "a manual score for"


def manual_scores(course: Course, exercise: str) -> dict[str, dict[str, dict]]:
    """student -> grade_id -> {"points": points, "why": the instructor's reason}."""
    try:
        return json.loads(_manual_file(course, exercise).read_text())
    except (OSError, ValueError):
        return {}


def _write_manual(course: Course, exercise: str, everything: dict) -> None:
    path = _manual_file(course, exercise)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(everything, indent=1, sort_keys=True))


def set_manual_score(course: Course, exercise: Exercise, student: str, grade_id: str, points: float | None,
                     why: str, sha256: str = "") -> None:
    """Record the instructor's score for one test cell (None: withdraw it), here and in nbgrader's gradebook,
    with the digest of the submission it was given for (`sha256`): a later, different file does not inherit it."""
    everything = manual_scores(course, exercise.name)
    mine = everything.setdefault(student, {})
    if points is None:
        mine.pop(grade_id, None)
    else:
        mine[grade_id] = {"points": float(points), "why": why} | ({"sha256": sha256} if sha256 else {})
    if not mine:
        everything.pop(student)
    _write_manual(course, exercise.name, everything)
    _gradebook_manual(course, exercise, student, {grade_id: points})


def _gradebook_manual(course: Course, exercise: Exercise, student: str, scores: dict[str, float | None]) -> None:
    """Set nbgrader's manual_score of these test cells (formgrader and `nbgrader export` then agree); a student
    without a submission in the gradebook (not graded yet, or unreadable) is left alone."""
    from nbgrader.api import MissingEntry

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with course.gradebook() as gradebook:
            for grade_id, points in scores.items():
                try:
                    grade = gradebook.find_grade(grade_id, exercise.notebook_id, exercise.name, student)
                except MissingEntry:
                    continue
                grade.manual_score = points
            gradebook.db.commit()


def adopt_formgrader_scores(course: Course, exercise: Exercise) -> None:
    """Scores an instructor set on test cells in nbgrader's formgrader (the gradebook's manual_score) join the
    manual scores, so that they hold whatever later happens to the gradebook's submission."""
    from nbgrader.api import MissingEntry

    everything = manual_scores(course, exercise.name)
    changed = False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with course.gradebook() as gradebook:
            try:
                submissions = gradebook.find_assignment(exercise.name).submissions
            except MissingEntry:
                return
            for submission in submissions:
                student = submission.student.id
                for grade in (g for notebook in submission.notebooks for g in notebook.grades):
                    if grade.name not in exercise.order or grade.manual_score is None:
                        continue
                    known = everything.get(student, {}).get(grade.name)
                    if known is None or float(known["points"]) != float(grade.manual_score):
                        everything.setdefault(student, {})[grade.name] = {"points": float(grade.manual_score),
                                                                          "why": FORMGRADER}
                        changed = True
    if changed:
        _write_manual(course, exercise.name, everything)


def apply_manual(result: Result, scores: dict[str, dict]) -> bool:
    """Put the instructor's scores (grade_id -> {"points", "why"}) into the result, the grader's kept beside them;
    cells no longer scored by hand get the grader's score back. A score given for another file than the one
    graded (the student handed in again) is set aside, with a note. Return True if the result changed."""
    before = result.to_json()
    for cell in result.cells.values():
        if cell.manual:
            cell.score, cell.auto_score, cell.manual_why = cell.auto_score, None, ""
    result.notes = [n for n in result.notes if not n.startswith(SET_ASIDE)]
    for grade_id, entry in scores.items():
        cell = result.cells.get(grade_id)
        if cell is not None and entry.get("sha256") and result.sha256 and entry["sha256"] != result.sha256:
            result.notes.append(f"{SET_ASIDE} {grade_id} ({float(entry['points']):g} by hand) was given for an earlier "
                                f"file, and this one differs: set aside (course score sets it again)")
        elif cell is not None:
            cell.auto_score, cell.score, cell.manual_why = cell.score, float(entry["points"]), str(entry.get("why", ""))
    if result.cells:
        result.score, result.max_score, result.reason = results.summarize(result.cells, result.notes, result.flags)
    return result.to_json() != before
