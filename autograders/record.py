"""Record what the judge decided: nbgrader's gradebook, the graded notebook, and one JSON file per student.

The grader's process is the only writer. The gradebook's scores come from nbgrader's own
SaveAutoGrades run on the graded notebook (a test cell that holds an error scores 0), so stock
nbgrader tools (formgrader, `nbgrader export`, `nbgrader generate_feedback`) see the same grades.
Instructors' decisions on review flags live beside the results, in reviews/<exercise>.json.
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
    path = course.autograded_notebook(student, exercise)
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, path)
    results.write(course.results_folder(exercise.name) / f"{student}.json", result)
    return result


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


def previous(course: Course, exercise: Exercise, student: str, digest: str) -> Result | None:
    """The recorded result of this very submission, if a batch already graded it (for --resume)."""
    found = results.read(course.results_folder(exercise.name) / f"{student}.json")
    if found is None or found.sha256 != digest:
        return None
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
