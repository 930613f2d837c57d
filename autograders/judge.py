"""Judge one executed submission in the grader's own process: a verdict per test cell, and a notebook that
is safe to hand back.

Three sources, in this order of authority:
1. the rules check (rules.py) on the submitted source: a broken rule scores its test cells 0;
2. the trusted re-check (trusted.py) of the answers each hidden test recorded;
3. what the sandbox reported: whether a step raised, timed out or never ran.

The student's process may have read a hidden test from the moment the first one was sent to it, and it
can smuggle it out in any form (printed, encoded, inside an exception or a display). So nothing that
process produced from then on reaches the student: test cells show the grader's own verdict, other
output is left out, and the page says so in one line. A kernel error is described by its kind alone,
with its message only where it is one of Python's own whose names the student's file already holds
("NameError: name 'predict' is not defined").
"""

from __future__ import annotations

import builtins
import copy
import dataclasses
import re
from dataclasses import dataclass

import nbformat

from autograders.course import Exercise, Limits
from autograders.prepare import Prepared
from autograders.results import CellResult, Result, one_line, summarize
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
_TEMPLATES = {
    "NameError": re.compile(r"name '(\w+)' is not defined"),
    "AttributeError": re.compile(r"'(\w+)' object has no attribute '(\w+)'|module '([\w.]+)' has no attribute '(\w+)'"),
    "ModuleNotFoundError": re.compile(r"No module named '([\w.]+)'"),
}


@dataclass
class Verdict:
    """The judge's work: the result (before it is recorded) and the notebook to store and hand back."""

    result: Result
    notebook: nbformat.NotebookNode


def explain(error: dict, known: set[str], limit: float) -> str:
    """A kernel error in words that carry nothing the submission's process could have chosen freely."""
    name, message = error.get("ename", ""), error.get("evalue", "")
    if name in TIMEOUTS:
        return f"stopped after the {limit:g} s time limit: look for a loop that never ends"
    if name == "NotImplementedError":
        return "not answered (the code still raises NotImplementedError)"
    template = _TEMPLATES.get(name)
    match = template.fullmatch(message.strip()) if template else None
    if match and all(word in known for part in match.groups() if part for word in part.split(".")):
        return f"{name}: {message.strip()}"
    if name == "AssertionError":
        return "a test in this cell failed: run the cell in your notebook to see its message"
    if name in BUILTIN_ERRORS:
        return f"{name} raised: run the cell in your notebook to see the message"
    return "an error was raised: run the cell in your notebook to see it"


def _first_error(outputs: list[list[dict] | None]) -> dict | None:
    return next((o for step in outputs if step for o in step if o.get("output_type") == "error"), None)


def _flag_guards(exercise: Exercise) -> tuple[str, ...]:
    """The test cells a rejected flag takes the points of: those with rules, or all where none has any."""
    ruled = tuple(t.grade_id for t in exercise.tests if t.rules)
    return ruled or tuple(exercise.order)


def judge_cells(exercise: Exercise, prepared: Prepared, outcome: Outcome, checks: dict[str, Check], report: Report,
                flags: list, limits: Limits) -> dict[str, CellResult]:
    """The verdict on every test cell of the exercise, in its order."""
    known = set(re.findall(r"\w+", prepared.submitted_text))
    rejected = [f for f in flags if f.decision == "rejected"]
    guards = _flag_guards(exercise)
    cells = {}
    for test in exercise.tests:
        indices = [i for i, step in enumerate(prepared.steps) if step.test == test.grade_id]
        visible = [outcome.outputs[i] for i in indices if not prepared.steps[i].hidden]
        hidden = [outcome.outputs[i] for i in indices if prepared.steps[i].hidden]
        never_ran = not indices or outcome.outputs[indices[0]] is None
        visible_error, hidden_error = _first_error(visible), _first_error(hidden)
        violation = report.broken(test.grade_id)
        check = checks.get(test.grade_id)
        if violation:
            why, codes = violation.reason, ["rule-broken"]
        elif rejected and test.grade_id in guards:
            flag = rejected[0]
            why, codes = f"rejected by the instructor: {flag.cell} line {flag.line}: {flag.why}", ["review-rejected"]
        elif check is not None and check.raised:  # the student's code raised inside the hidden test
            kernel = hidden_error if hidden_error and hidden_error.get("ename") == check.raised else visible_error
            why = check.message or explain(kernel or {"ename": check.raised}, known, limits.cell_seconds)
            codes = []
        elif check is not None and not check.passed:
            why, codes = check.message, []
        elif never_ran:
            why, codes = f"this cell never ran: {outcome.ended}", ["never-ran"]
        elif check is not None and visible_error and visible_error.get("ename") == "AssertionError":
            why, codes = VISIBLE_ONLY, []
        elif visible_error or hidden_error:
            why, codes = explain(visible_error or hidden_error, known, limits.cell_seconds), []
        elif check is None and test.records_answers:
            why, codes = NO_ANSWERS, ["no-answers"]
        elif any(o is None for o in visible + hidden):
            why, codes = f"this cell stopped: {outcome.ended}", ["never-ran"]
        else:
            why, codes = "", []
        cells[test.grade_id] = CellResult(0.0 if why else test.points, test.points, one_line(why), codes, why)
    return cells


def safe_notebook(exercise: Exercise, prepared: Prepared, outcome: Outcome, cells: dict[str, CellResult]) -> nbformat.NotebookNode:
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
