"""One submission's way through the grader: prepare it, execute it in a sandbox, judge what came back.

prepare   (grader process) restore deleted test cells, then nbgrader's own sanitizing preprocessors:
          clear outputs, drop duplicated ids, reset the kernelspec, overwrite every locked and test
          cell with the instructor's version (hidden tests included), check the metadata.
execute   (a sandbox, see sandbox.py; in parallel, locally or on a Dask cluster) run the code cells.
judge     (grader process, one at a time: the only gradebook writer) re-check the recorded answers
          with the hidden tests' own `check` (trusted.py), score with nbgrader's SaveAutoGrades, and
          write the autograded notebook that `course feedback` turns into HTML.
"""

from __future__ import annotations

import copy
import os
import threading
import warnings
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from autograders.sandbox import Job, Limits, Outcome, Sandbox


@dataclass
class Prepared:
    """A submission ready to run: the sanitized notebook, and what was repaired on the way."""

    student: str
    notebook: nbformat.NotebookNode
    notes: list[str] = field(default_factory=list)

    def job(self, limits: Limits) -> Job:
        return Job([cell.source for cell in self.notebook.cells if cell.cell_type == "code"], limits)


def limits_from(config) -> Limits:
    """The sandbox limits: the per-cell time limit is nbgrader's own (Execute.timeout)."""
    limits = Limits()
    timeout = config.Execute.get("timeout")
    if timeout:
        limits.cell_seconds = float(timeout)
    return limits


def _grade_id(cell) -> str | None:
    nbgrader = cell.get("metadata", {}).get("nbgrader", {})
    return nbgrader.get("grade_id") if nbgrader.get("grade") else None


def restore_test_cells(notebook: nbformat.NotebookNode, source: nbformat.NotebookNode) -> list[str]:
    """Put back every test cell the student deleted (or stripped of its metadata), where it was."""
    present = {_grade_id(c) for c in notebook.cells}
    restored = []
    for index, cell in enumerate(source.cells):
        grade_id = _grade_id(cell)
        if grade_id is None or grade_id in present:
            continue
        # after the nearest earlier source cell that the submission still has (by nbgrader id)
        position = 0
        earlier = {c.get("metadata", {}).get("nbgrader", {}).get("grade_id") for c in source.cells[:index]} - {None}
        for i, mine in enumerate(notebook.cells):
            if mine.get("metadata", {}).get("nbgrader", {}).get("grade_id") in earlier:
                position = i + 1
        fresh = copy.deepcopy(cell)
        fresh.pop("id", None)
        notebook.cells.insert(position, fresh)
        present.add(grade_id)
        restored.append(grade_id)
    return restored


def _resources(api, exercise: str, notebook_id: str, student: str) -> dict:
    return {"nbgrader": {"assignment": exercise, "notebook": notebook_id, "student": student, "db_url": api.coursedir.db_url}}


def prepare(api, source: Path, exercise: str, student: str, path: Path) -> Prepared:
    """The submission as nbgrader's autograde would execute it, with deleted test cells restored."""
    from nbgrader.preprocessors import CheckCellMetadata, ClearOutput, DeduplicateIds, OverwriteCells, OverwriteKernelspec

    notebook = nbformat.read(path, as_version=4)
    notes = [f"{grade_id} had been deleted: restored and scored" for grade_id in restore_test_cells(notebook, nbformat.read(source, as_version=4))]
    resources = _resources(api, exercise, source.stem, student)
    for step in (ClearOutput, DeduplicateIds, OverwriteKernelspec, OverwriteCells, CheckCellMetadata):
        notebook, resources = step().preprocess(notebook, resources)
    return Prepared(student, notebook, notes)


# ---------------------------------------------------------------- execution, in parallel

_local = threading.local()
_sandboxes: list[Sandbox] = []
_sandboxes_lock = threading.Lock()


def _sandbox(isolated: bool | None, warm: bool, threads: int) -> Sandbox:
    """This thread's sandbox (each worker thread, here or on a Dask worker, keeps its own)."""
    sandbox = getattr(_local, "sandbox", None)
    if sandbox is None:
        sandbox = _local.sandbox = Sandbox(isolated=isolated, warm=warm, threads=threads)
        with _sandboxes_lock:
            _sandboxes.append(sandbox)
    return sandbox


def _start_sandbox(isolated: bool | None, warm: bool, threads: int) -> None:
    sandbox = _sandbox(isolated, warm, threads)
    if sandbox.process is None:
        sandbox._start()


def execute(job: Job, isolated: bool | None = None, warm: bool = True, threads: int = 1) -> Outcome:
    """Run one job in this thread's sandbox (the function a Dask worker runs too)."""
    return _sandbox(isolated, warm, threads).run(job)


def close_sandboxes() -> None:
    with _sandboxes_lock:
        while _sandboxes:
            _sandboxes.pop().close()
    _local.__dict__.clear()


class Pool:
    """`workers` sandboxes on this machine, or the given executor's (a Dask cluster's) workers."""

    def __init__(self, workers: int | None = None, executor: Executor | None = None, isolated: bool | None = None, warm: bool = True):
        self.workers = workers or os.cpu_count() or 1
        self.threads = max(1, (os.cpu_count() or 1) // self.workers)
        self.isolated, self.warm = isolated, warm
        self.owned = executor is None
        self.executor = executor or ThreadPoolExecutor(self.workers, thread_name_prefix="grading")
        if self.owned:  # start the sandboxes now, while the grader prepares the submissions
            for _ in range(self.workers):
                self.executor.submit(_start_sandbox, isolated, warm, self.threads)

    def submit(self, job: Job) -> Future:
        return self.executor.submit(execute, job, self.isolated, self.warm, self.threads)

    def close(self) -> None:
        if self.owned:
            self.executor.shutdown(wait=True, cancel_futures=True)
            close_sandboxes()


# ---------------------------------------------------------------- judging (the one gradebook writer)


def _merge(notebook: nbformat.NotebookNode, outcome: Outcome) -> nbformat.NotebookNode:
    """The executed notebook: each code cell gets its outputs; cells that never ran say why."""
    executed = copy.deepcopy(notebook)
    code = [c for c in executed.cells if c.cell_type == "code"]
    for count, (cell, outputs) in enumerate(zip(code, outcome.outputs), start=1):
        if outputs is None:
            outputs = [{"output_type": "error", "ename": "NotRun", "evalue": f"this cell never ran: {outcome.ended}", "traceback": []}]
        cell.outputs = [nbformat.from_dict(o) for o in outputs]
        cell.execution_count = count
    return executed


def _without_stderr(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A copy for scoring: a warning on stderr is not a failed test (errors and assertions are)."""
    scored = copy.deepcopy(notebook)
    for cell in scored.cells:
        if cell.cell_type == "code":
            cell.outputs = [o for o in cell.outputs if not (o.output_type == "stream" and o.get("name") == "stderr")]
    return scored


def judge(api, source: Path, exercise: str, prepared: Prepared, outcome: Outcome, limits: Limits):
    """Score one executed submission, write the gradebook and the autograded notebook; return its Result."""
    with warnings.catch_warnings():  # nbgrader's own SQLAlchemy usage warns about autoflush; harmless
        warnings.simplefilter("ignore")
        return _judge(api, source, exercise, prepared, outcome, limits)


def _judge(api, source: Path, exercise: str, prepared: Prepared, outcome: Outcome, limits: Limits):
    from nbgrader.api import Gradebook
    from nbgrader.preprocessors import SaveAutoGrades

    from autograders.grade import graded_cells, read_grades
    from autograders.trusted import recheck

    executed = _merge(prepared.notebook, outcome)
    verdicts = recheck(source, outcome.answers)
    for cell in executed.cells:
        grade_id = _grade_id(cell)
        failed_inside = any(o.output_type == "error" for o in cell.get("outputs", []))
        if grade_id in verdicts and verdicts[grade_id] is not None and not failed_inside:
            cell.outputs.append(nbformat.from_dict(
                {"output_type": "error", "ename": "AssertionError", "evalue": verdicts[grade_id], "traceback": []}
            ))
    student, notebook_id = prepared.student, source.stem
    with Gradebook(api.coursedir.db_url) as gradebook:
        gradebook.update_or_create_student(student)
        gradebook.update_or_create_submission(exercise, student)
    SaveAutoGrades().preprocess(_without_stderr(executed), _resources(api, exercise, notebook_id, student))
    folder = Path(api.coursedir.format_path(api.coursedir.autograded_directory, student, exercise))
    folder.mkdir(parents=True, exist_ok=True)
    nbformat.write(executed, folder / f"{notebook_id}.ipynb")
    with Gradebook(api.coursedir.db_url) as gradebook:
        submission = gradebook.find_submission(exercise, student)
        return read_grades(submission, executed, graded_cells(source), limits.cell_seconds, prepared.notes)
