"""Judge one executed submission in the grader's own process: a verdict per test cell, and a notebook that
is safe to hand back.

Three sources, in this order of authority:
1. the rules check (rules.py) on the submitted source: a broken rule scores its test cells 0;
2. the trusted re-check (trusted.py) of the answers each hidden test recorded;
3. what the sandbox reported: whether a step raised, timed out or never ran.

The student's process may have read a hidden test from the moment the first one was sent to it, and it
can smuggle it out in any form (printed, encoded, inside an exception or a display). So nothing that
process produced from then on reaches the student: test cells show the grader's own verdict, other
output is left out, and the page says so in one line. A kernel error from then on is described by its
kind alone ("NameError raised"); one from before keeps Python's own first line ("NameError: name
'predict' is not defined"), as the page shows those cells' output anyway.

Each verdict carries codes for the class report (`course report`): the codes of the mistakes the trusted
re-check recognised (trusted.py reads them off its own checks' exceptions), or the grader's own
(results.GRADER_CODES): a rule broken, a rejected flag, a cell that never ran, a time limit, an error's
kind (only Python's own kinds, and never a message: the kind describes the student's own cell, as the
reason does).
"""

from __future__ import annotations

import builtins
import copy
import dataclasses
from dataclasses import dataclass

import nbformat

from autograders.course import Exercise, Limits
from autograders.prepare import Prepared
from autograders.results import CellResult, Result, one_line, printable, summarize
from autograders.rules import Report
from autograders.sandbox import Outcome
from autograders.trusted import Check

HIDDEN_OUTPUT_NOTE = (
    "**Output after the first hidden test is not shown.** From here on, each test cell shows the grader's "
    "own verdict; run the notebook yourself to see everything it prints."
)
UNSANDBOXED_NOTE = (
    "**Output is not shown**: this notebook was graded without the sandbox. Each test cell shows the "
    "grader's own verdict; run the notebook yourself to see everything it prints."
)
VISIBLE_ONLY = "a visible test in this cell failed, though the hidden tests passed: run the cell in your notebook to see why"
NO_ANSWERS = "the notebook recorded no answers for this test (did the cell run to its end?)"
BUILTIN_ERRORS = {name for name, value in vars(builtins).items() if isinstance(value, type) and issubclass(value, BaseException)}
TIMEOUTS = {"CellTimeoutError", "TimeoutError", "KeyboardInterrupt"}


@dataclass
class Verdict:
    """The judge's work: the result (before it is recorded) and the notebook to store and hand back."""

    result: Result
    notebook: nbformat.NotebookNode


def explain(error: dict, limit: float, tainted: bool, timed_out: bool) -> str:
    """A kernel error in words. From a step that ran after the first hidden test (`tainted`), by its kind
    alone: its message could carry anything the process knew. From before, as Python said it (first line).
    A timeout only where the grader's own clock saw the step last the limit (`timed_out`)."""
    name, message = error.get("ename", ""), error.get("evalue", "")
    if name in TIMEOUTS and timed_out:
        return f"stopped after the {limit:g} s time limit: look for a loop that never ends"
    if name == "NotImplementedError":
        return "not answered (the code still raises NotImplementedError)"
    if not tainted and name in BUILTIN_ERRORS:
        first = message.strip().splitlines()[0] if message.strip() else ""
        return f"{name}: {printable(first[:300])}" if first else name
    if name == "AssertionError":
        return "a test in this cell failed: run the cell in your notebook to see its message"
    if name in BUILTIN_ERRORS:
        return f"{name} raised: run the cell in your notebook to see the message"
    return "an error was raised: run the cell in your notebook to see it"


def error_code(error: dict, timed_out: bool) -> str:
    """The grader's code for a kernel error: from its kind alone, within a fixed set; a timeout only where the
    grader's own clock saw the step last the limit. (Other kinds are as the notebook's process named them: a
    student can misname only their own failure, which scores 0 whatever its name.)"""
    name = error.get("ename", "")
    if name in TIMEOUTS and timed_out:
        return "timeout"
    if name in TIMEOUTS:
        return "error"
    if name == "NotImplementedError":
        return "not-answered"
    if name == "AssertionError":
        return "test-failed"
    return f"error-{name}" if name in BUILTIN_ERRORS else "error"


def _first_error(outcome: Outcome, indices: list[int]) -> tuple[dict | None, int]:
    """The first error among these steps' outputs, and the step it came from."""
    for index in indices:
        for output in outcome.outputs[index] or []:
            if output.get("output_type") == "error":
                return output, index
    return None, -1


def _flag_guards(exercise: Exercise) -> tuple[str, ...]:
    """The test cells a rejected flag takes the points of: those with rules, or all where none has any."""
    ruled = tuple(t.grade_id for t in exercise.tests if t.rules)
    return ruled or tuple(exercise.order)


def judge_cells(exercise: Exercise, prepared: Prepared, outcome: Outcome, checks: dict[str, Check], report: Report,
                flags: list, limits: Limits) -> dict[str, CellResult]:
    """The verdict on every test cell of the exercise, in its order."""
    first = prepared.first_hidden if outcome.isolated else 0  # from this step on, the process may know a hidden test
    first = len(prepared.steps) if first is None else first
    rejected = [f for f in flags if f.decision == "rejected"]
    guards = _flag_guards(exercise)

    def timed_out(at: int) -> bool:
        """Did step `at` last the cell's time limit by the grader's clock (not by what the notebook printed)?"""
        return at < len(outcome.step_seconds) and outcome.step_seconds[at] >= limits.cell_seconds

    cells = {}
    for test in exercise.tests:
        indices = [i for i, step in enumerate(prepared.steps) if step.test == test.grade_id]
        visible = [i for i in indices if not prepared.steps[i].hidden]
        hidden = [i for i in indices if prepared.steps[i].hidden]
        never_ran = not indices or outcome.outputs[indices[0]] is None
        (visible_error, visible_at), (hidden_error, hidden_at) = _first_error(outcome, visible), _first_error(outcome, hidden)
        violation = report.broken(test.grade_id)
        check = checks.get(test.grade_id)
        if violation:
            why, codes = violation.reason, ["rule-broken"]
        elif rejected and test.grade_id in guards:
            flag = rejected[0]
            why, codes = f"rejected by the instructor: {flag.cell} line {flag.line}: {flag.why}", ["review-rejected"]
        elif check is not None and check.raised:  # the student's code raised inside the hidden test
            if visible_error and visible_error.get("ename") == check.raised:
                error, at = visible_error, visible_at
            else:
                error, at = {"ename": check.raised}, len(prepared.steps)
            why, codes = check.message or explain(error, limits.cell_seconds, at >= first, timed_out(at)), list(check.codes)
            codes = codes or [error_code(error, timed_out(at))]
        elif check is not None and not check.passed:
            why, codes = check.message, list(check.codes)
        elif never_ran:
            why, codes = f"this cell never ran: {outcome.ended}", ["never-ran"]
        elif check is not None and visible_error and visible_error.get("ename") == "AssertionError":
            why, codes = VISIBLE_ONLY, ["visible-test-failed"]
        elif visible_error or hidden_error:
            error, at = (visible_error, visible_at) if visible_error else (hidden_error, hidden_at)
            why, codes = explain(error, limits.cell_seconds, at >= first, timed_out(at)), [error_code(error, timed_out(at))]
        elif check is None and test.records_answers:
            why, codes = NO_ANSWERS, ["no-answers"]
        elif any(outcome.outputs[i] is None for i in visible + hidden):
            why, codes = f"this cell stopped: {outcome.ended}", ["never-ran"]
        else:
            why, codes = "", []
        cells[test.grade_id] = CellResult(0.0 if why else test.points, test.points, one_line(why), codes, why)
    return cells


def safe_notebook(exercise: Exercise, prepared: Prepared, outcome: Outcome,
                  cells: dict[str, CellResult]) -> nbformat.NotebookNode:
    """The graded notebook: outputs from before the first hidden test, the grader's verdict in each test cell.

    nbgrader scores it (a test cell fails where it holds an error) and turns it into the feedback page.
    """
    notebook = copy.deepcopy(prepared.notebook)
    first = prepared.first_hidden if outcome.isolated else 0
    first_cell = prepared.steps[first].cell if first is not None and first < len(prepared.steps) else None
    outputs: dict[int, list] = {}
    for index, step in enumerate(prepared.steps):
        if first is None or index < first:
            outputs.setdefault(step.cell, []).extend(outcome.outputs[index] or [])
    count = 0
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type != "code":
            continue
        count += 1
        cell.execution_count = count
        grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        if grade_id in cells and (first_cell is None or index >= first_cell):
            verdict = cells[grade_id]
            message = verdict.detail or verdict.reason
            cell.outputs = [] if not verdict.reason else [nbformat.from_dict(
                {"output_type": "error", "ename": "Failed", "evalue": message, "traceback": [f"Failed: {message}"]}
            )]
        elif first_cell is None or index < first_cell:
            cell.outputs = [nbformat.from_dict(o) for o in outputs.get(index, [])]
        else:
            cell.outputs = []
    if first_cell is not None:
        note = nbformat.v4.new_markdown_cell(HIDDEN_OUTPUT_NOTE if outcome.isolated else UNSANDBOXED_NOTE)
        note.metadata["course"] = {"note": "hidden output"}
        note["id"] = "course-hidden-output-note"
        notebook.cells.insert(first_cell, note)
    return notebook


def judge(exercise: Exercise, prepared: Prepared, outcome: Outcome, checks: dict[str, Check], report: Report,
          decisions: dict[str, str], limits: Limits) -> Verdict:
    """Score one executed submission; return its result and the notebook to record."""
    flags = [dataclasses.replace(f, decision=decisions.get(f.id, "pending")) for f in report.flags]
    cells = judge_cells(exercise, prepared, outcome, checks, report, flags, limits)
    score, max_score, reason = summarize(cells, prepared.notes, flags)
    result = Result(prepared.student, score, max_score, reason, cells, flags, list(prepared.notes), seconds=outcome.seconds)
    return Verdict(result, safe_notebook(exercise, prepared, outcome, cells))
