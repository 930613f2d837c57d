"""Make a submission ready to run: read it, put back deleted test cells, sanitize it as nbgrader does,
and cut it into the steps the sandbox runs one at a time.

A test cell becomes two kinds of steps: its visible tests, then its hidden tests. The hidden tests run
even when a visible test failed (the cell scores 0 either way), so the grader's own re-check always has
answers to judge and can say what is wrong. After a test cell's hidden step the sandbox takes the
answers it recorded (`collect`).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from nbgrader.preprocessors import CheckCellMetadata, ClearOutput, DeduplicateIds, OverwriteCells, OverwriteKernelspec

from autograders.course import HIDDEN, Course, Exercise

# nbgrader's own sanitizing preprocessors, in the order its `autograde` converter runs them: clear the
# outputs, drop duplicated cell ids, reset the kernelspec, overwrite every locked and test cell with the
# instructor's version (hidden tests included), check the cells' metadata.
SANITIZE = [ClearOutput, DeduplicateIds, OverwriteKernelspec, OverwriteCells, CheckCellMetadata]


class NotGradable(Exception):
    """The file cannot be graded at all; the message says why, for the student's reason."""


@dataclass(frozen=True)
class Step:
    """One piece of code the sandbox runs: a code cell, or the visible or hidden part of a test cell."""

    cell: int  # index in the prepared notebook's cells
    source: str
    hidden: str | None = None  # the grade_id, when this is a test cell's hidden part
    test: str | None = None  # the grade_id, when this is any part of a test cell


@dataclass
class Prepared:
    """A submission ready to run: the sanitized notebook, its steps, and what was repaired on the way."""

    student: str
    notebook: nbformat.NotebookNode
    steps: list[Step]
    submitted_text: str  # the file as handed in (what the student wrote and saw)
    notes: list[str] = field(default_factory=list)

    @property
    def first_hidden(self) -> int | None:
        """The index of the first step that runs hidden tests (None: the notebook has none)."""
        return next((i for i, step in enumerate(self.steps) if step.hidden), None)


def _grade_id(cell) -> str | None:
    nbgrader = cell.get("metadata", {}).get("nbgrader", {})
    return nbgrader.get("grade_id") if nbgrader.get("grade") else None


def read_submission(path: Path) -> tuple[nbformat.NotebookNode, str]:
    """The notebook at `path` and its text, or NotGradable saying what is wrong with the file."""
    try:
        text = path.read_text()
        notebook = nbformat.reads(text, as_version=4)
        nbformat.validate(notebook)
    except Exception as error:  # JSON errors, schema errors, binary files, unreadable files
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise NotGradable(f"not a valid Jupyter notebook, so it was not graded ({first[:160]})") from None
    return notebook, text


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
        fresh["id"] = f"restored-{grade_id}"[:64]
        notebook.cells.insert(position, fresh)
        present.add(grade_id)
        restored.append(grade_id)
    return restored


def split_test_cell(source: str) -> list[tuple[str, bool]]:
    """A test cell's code as (code, is_hidden) parts in order: what a student sees, and each hidden block."""
    parts, position = [], 0
    for match in HIDDEN.finditer(source):
        if source[position : match.start()].strip():
            parts.append((source[position : match.start()], False))
        parts.append((match.group(1), True))
        position = match.end()
    if source[position:].strip():
        parts.append((source[position:], False))
    return parts


def steps_of(notebook: nbformat.NotebookNode) -> list[Step]:
    """The steps that run the notebook's code cells in order, test cells cut into visible and hidden parts."""
    steps = []
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type != "code":
            continue
        grade_id = _grade_id(cell)
        if grade_id is None:
            steps.append(Step(index, cell.source))
            continue
        parts = split_test_cell(cell.source) or [("", False)]
        for code, hidden in parts:
            steps.append(Step(index, code, hidden=grade_id if hidden else None, test=grade_id))
    return steps


def prepare(course: Course, exercise: Exercise, student: str, path: Path) -> Prepared:
    """The submission as nbgrader's autograde would execute it, with deleted test cells restored."""
    notebook, text = read_submission(path)
    restored = restore_test_cells(notebook, exercise.notebook)
    notes = [f"{grade_id} had been deleted: restored and scored" for grade_id in restored]
    resources = {"nbgrader": {"assignment": exercise.name, "notebook": exercise.notebook_id, "student": student,
                              "db_url": course.db_url}}
    try:
        for preprocessor in SANITIZE:
            notebook, resources = preprocessor().preprocess(notebook, resources)
    except Exception as error:  # nbgrader refused its cells (broken metadata, say)
        raise NotGradable(f"nbgrader could not read its cells: {type(error).__name__}: {error}") from None
    return Prepared(student, notebook, steps_of(notebook), text, notes)
