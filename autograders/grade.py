"""Autograde a batch of submissions with nbgrader, one student at a time, never stopping for one.

Each student's outcome is written to coursework/results/<exercise>/<student>.json as soon as it
is known, so a report (or a later, larger grader) can rely on it even if the batch is cut short.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import textwrap
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import nbformat

from autograders.course import (
    generate_release,
    gradebook_url,
    nbgrader_api,
    nbgrader_error,
    quiet,
    source_notebook,
    work_folder,
)


MISSING_CELL = (
    "the test cell is missing (deleted, or its nbgrader metadata was stripped): "
    "download a fresh copy of the exercise and paste your answers into it"
)


@dataclass
class Result:
    """One student's grade: total, per test cell, and a reason a person can read."""

    student: str
    score: float
    max_score: float
    reason: str
    cells: dict[str, list[float]] = field(default_factory=dict)  # grade_id -> [score, max]
    submitted: str = ""


def _first_lines(text: str) -> str:
    """The first line of an error message, plus its 'likely cause' line when utils.checks gave one."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    if not lines:
        return ""
    cause = next((line for line in lines if line.startswith("likely cause:")), None)
    return f"{lines[0]} ({cause})" if cause else lines[0]


def failure_reason(cell: nbformat.NotebookNode, timeout: int | None) -> str:
    """Why a test cell lost its points, from what it printed."""
    for output in cell.get("outputs", []):
        if output.get("output_type") != "error":
            continue
        name = output.get("ename", "Error")
        if name == "NotImplementedError":
            return "not answered (the code still raises NotImplementedError)"
        if name in ("CellTimeoutError", "KeyboardInterrupt", "TimeoutError"):
            return f"stopped after the {timeout} s time limit: look for a loop that never ends"
        if name == "DeadKernelError":
            return "the notebook's kernel died (it crashed, exited or ran out of memory)"
        message = _first_lines(output.get("evalue", ""))
        if name == "AssertionError" and message:  # the course's checks explain themselves
            return message
        return f"{name}: {message}" if message else name
    for output in cell.get("outputs", []):
        if output.get("output_type") == "stream" and output.get("name") == "stderr":
            return "the cell wrote to stderr, which nbgrader counts as a failure: " + _first_lines(output.get("text", ""))
    return "the test did not pass"


def graded_cells(notebook: Path) -> list[str]:
    """The grade_id of every test cell in a notebook, in order."""
    cells = nbformat.read(notebook, as_version=4).cells
    return [c.metadata.nbgrader["grade_id"] for c in cells if c.metadata.get("nbgrader", {}).get("grade")]


def _write_atomically(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(handle, "w") as f:
        json.dump(data, f, indent=1)
    os.replace(temporary, path)


def _readable(path: Path) -> str | None:
    """None if `path` is a valid notebook, else what is wrong with it."""
    try:
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
    except Exception as error:  # JSON errors, schema errors, binary files, unreadable files
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        return f"not a valid Jupyter notebook, so it was not graded ({first[:160]})"
    return None


def ensure_released(root: Path, exercise: str, api=None) -> None:
    """Make sure the gradebook knows the exercise's test cells (nbgrader learns them at generation)."""
    from nbgrader.api import Gradebook, MissingEntry

    with Gradebook(gradebook_url(root)) as gradebook:
        try:
            gradebook.find_assignment(exercise)
            return
        except MissingEntry:
            pass
    generate_release(root, exercise, api)


def grade(
    root: Path,
    exercise: str,
    submissions: dict[str, Path],
    progress: Callable[[Result], None] | None = None,
) -> list[Result]:
    """Autograde every submission; return one Result per student, whatever happens to the others."""
    from nbgrader.api import Gradebook, MissingEntry

    source = source_notebook(root, exercise)
    notebook, order = source.stem, graded_cells(source)
    api = nbgrader_api(root)
    ensure_released(root, exercise, api)
    coursedir = api.coursedir
    timeout = api.config.Execute.get("timeout", 30)
    results = work_folder(root) / "results" / exercise
    graded_results = []
    for student, path in sorted(submissions.items()):
        problem = _readable(path)
        if problem is None:
            target = Path(coursedir.format_path(coursedir.submitted_directory, student, exercise))
            shutil.rmtree(target, ignore_errors=True)
            target.mkdir(parents=True)
            shutil.copyfile(path, target / f"{notebook}.ipynb")
            with quiet():
                outcome = api.autograde(exercise, student, force=True, create=True)
            if not outcome.get("success"):
                problem = f"nbgrader could not grade it: {nbgrader_error(outcome)}"
        with Gradebook(gradebook_url(root)) as gradebook:
            max_score = gradebook.find_assignment(exercise).max_score
            if problem is not None:
                gradebook.update_or_create_student(student)
                try:  # an earlier grade must not outlive the submission that replaced it
                    gradebook.remove_submission(exercise, student)
                except MissingEntry:
                    pass
                result = Result(student, 0.0, max_score, problem)
            else:
                graded = Path(coursedir.format_path(coursedir.autograded_directory, student, exercise)) / source.name
                result = _read_grades(gradebook.find_submission(exercise, student), graded, order, timeout)
        result.submitted = str(path)
        _write_atomically(results / f"{student}.json", asdict(result))
        graded_results.append(result)
        if progress:
            progress(result)
    return graded_results


def _read_grades(submission, graded: Path, order: list[str], timeout: int) -> Result:
    """The gradebook's scores for one submission, with a reason for every test cell that lost points."""
    cells = {
        cell.metadata.nbgrader["grade_id"]: cell
        for cell in nbformat.read(graded, as_version=4).cells
        if cell.metadata.get("nbgrader", {}).get("grade")
    }
    scores, reasons = {}, []
    for grade in sorted(submission.notebooks[0].grades, key=lambda g: order.index(g.name) if g.name in order else len(order)):
        scores[grade.name] = [grade.score, grade.max_score]
        if grade.score < grade.max_score:
            cell = cells.get(grade.name)
            why = failure_reason(cell, timeout) if cell is not None else MISSING_CELL
            reasons.append(f"{grade.name}: {why}")
    reason = "; ".join(reasons) if reasons else "all tests passed"
    return Result(submission.student.id, submission.score, submission.max_score, reason, scores)


def format_table(results: list[Result], width: int = 100) -> str:
    """A plain-text table: student, score, and every reason, wrapped to fit `width`."""
    if not results:
        return "(no submissions)"
    name_width = max(7, *(len(r.student) for r in results))
    lines = [f"{'student':<{name_width}}  {'score':>9}  reason", f"{'-' * name_width}  {'-' * 9}  {'-' * 6}"]
    indent = " " * (name_width + 13)
    for r in results:
        first = f"{r.student:<{name_width}}  {r.score:>4g}/{r.max_score:<4g}  "
        for i, reason in enumerate(r.reason.split("; ")):
            lead = first if i == 0 else indent
            lines.append(textwrap.fill(reason, max(width, 60), initial_indent=lead, subsequent_indent=indent + "  "))
    return "\n".join(lines)
