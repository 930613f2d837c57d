"""Autograde a batch of submissions with nbgrader, one student at a time, never stopping for one.

Each student's outcome is written to coursework/results/<exercise>/<student>.json as soon as it
is known, so a report (or a later, larger grader) can rely on it even if the batch is cut short.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import textwrap
from collections.abc import Callable
from concurrent.futures import Executor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path

import nbformat

from autograders.course import generate_release, gradebook_url, nbgrader_api, source_notebook, work_folder


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
    sha256: str = ""  # of the submitted file: --resume skips a student whose file is unchanged
    resumed: bool = False  # kept from an earlier batch (--resume), not graded again


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
            return f"stopped after the {timeout:g} s time limit: look for a loop that never ends"
        if name == "NotRun":  # the sandbox's words for cells after a crash, an exit or a kill
            return output.get("evalue", "this cell never ran")
        message = _first_lines(output.get("evalue", ""))
        if name == "AssertionError" and message:  # the course's checks explain themselves
            return message
        return f"{name}: {message}" if message else name
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


def prepare_data(source: Path) -> None:
    """Fetch and unpack the data an exercise loads, here: sandboxes see the data root read-only."""
    if "load_mnist" in source.read_text():
        from utils.data import download_mnist

        download_mnist()  # without network and files, the notebook and the grader both use the offline sample


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _previous(results: Path, student: str, digest: str) -> Result | None:
    """The recorded result of this very submission, if a batch already graded it (for --resume)."""
    try:
        data = json.loads((results / f"{student}.json").read_text())
    except (OSError, ValueError):
        return None
    if data.get("sha256") != digest:
        return None
    data["resumed"] = True
    return Result(**data)


def grade(
    root: Path,
    exercise: str,
    submissions: dict[str, Path],
    progress: Callable[[Result], None] | None = None,
    workers: int | None = None,
    executor: Executor | None = None,
    resume: bool = False,
    isolated: bool | None = None,
    warm: bool = True,
) -> list[Result]:
    """Autograde every submission; return one Result per student, whatever happens to the others.

    Executions run in parallel in sandboxes (`workers` of them, or on `executor`, e.g. a Dask
    cluster's); this process alone judges the recorded answers and writes the gradebook.
    """
    from autograders import execute

    source = source_notebook(root, exercise)
    pool = execute.Pool(workers, executor=executor, isolated=isolated, warm=warm)  # sandboxes boot meanwhile
    try:
        return _grade(root, exercise, source, submissions, pool, progress, resume)
    finally:
        pool.close()


def _grade(root, exercise, source, submissions, pool, progress, resume) -> list[Result]:
    import utils.grading  # noqa: F401  (torch, for the grader's own checks: imported while the sandboxes boot)
    from autograders import execute

    api = nbgrader_api(root)
    ensure_released(root, exercise, api)
    prepare_data(source)
    limits = execute.limits_from(api.config)
    results = work_folder(root) / "results" / exercise
    graded_results: list[Result] = []

    def record(result: Result) -> None:
        if not result.resumed:
            _write_atomically(results / f"{result.student}.json", asdict(result))
        graded_results.append(result)
        if progress:
            progress(result)

    pending: dict[str, tuple[Path, str, execute.Prepared]] = {}
    for student, path in sorted(submissions.items()):
        digest = _sha256(path) if path.is_file() else ""
        if resume and (done := _previous(results, student, digest)) is not None:
            record(done)
            continue
        problem = _readable(path)
        if problem is None:
            try:
                pending[student] = (path, digest, execute.prepare(api, source, exercise, student, path))
            except Exception as error:  # nbgrader refused its cells (broken metadata, say)
                problem = f"nbgrader could not read its cells: {type(error).__name__}: {error}"
        if problem is not None:
            record(_not_graded(root, exercise, student, problem, str(path), digest))
    futures = {pool.submit(prepared.job(limits)): student for student, (_, _, prepared) in pending.items()}
    for future in as_completed(futures):
        student = futures[future]
        path, digest, prepared = pending[student]
        try:
            outcome = future.result()
        except Exception as error:  # the executor itself failed (a lost Dask worker, say)
            record(_not_graded(root, exercise, student, f"the grading worker failed: {error}", str(path), digest))
            continue
        result = execute.judge(api, source, exercise, prepared, outcome, limits)
        result.submitted, result.sha256 = str(path), digest
        record(result)
    return sorted(graded_results, key=lambda r: r.student)


def _not_graded(root: Path, exercise: str, student: str, problem: str, submitted: str, digest: str) -> Result:
    """A zero with the reason; an earlier grade must not outlive the submission that replaced it."""
    from nbgrader.api import Gradebook, MissingEntry

    with Gradebook(gradebook_url(root)) as gradebook:
        max_score = gradebook.find_assignment(exercise).max_score
        gradebook.update_or_create_student(student)
        try:
            gradebook.remove_submission(exercise, student)
        except MissingEntry:
            pass
    return Result(student, 0.0, max_score, problem, submitted=submitted, sha256=digest)


def read_grades(submission, graded: nbformat.NotebookNode, order: list[str], timeout: float, notes: list[str]) -> Result:
    """The gradebook's scores for one submission, with a reason for every test cell that lost points."""
    cells = {
        cell.metadata.nbgrader["grade_id"]: cell for cell in graded.cells if cell.metadata.get("nbgrader", {}).get("grade")
    }
    scores, reasons = {}, []
    for grade in sorted(submission.notebooks[0].grades, key=lambda g: order.index(g.name) if g.name in order else len(order)):
        scores[grade.name] = [grade.score, grade.max_score]
        if grade.score < grade.max_score:
            cell = cells.get(grade.name)
            why = failure_reason(cell, timeout) if cell is not None else MISSING_CELL
            reasons.append(f"{grade.name}: {why}")
    reason = "; ".join(reasons) if reasons else "all tests passed"
    if notes:
        reason += "; " + "; ".join(notes)
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
