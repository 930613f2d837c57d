"""What grading one submission gives: the result type that the judge builds and every reader uses.

Kept apart from the stages that make it (as otter keeps its GradingResults apart from its runners),
so the judge, the recorder, the CLI, the release check and the tests all import it from here.
A result is written to coursework/results/<exercise>/<student>.json as soon as it is known.
"""

from __future__ import annotations

import json
import os
import tempfile
import textwrap
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from utils.diagnoses import describe

GRADER_CODES = {  # the grader's own codes, beside those of the checks (utils.diagnoses.DIAGNOSES)
    "rule-broken": "a rule of the exercise is broken (the rules check on the submitted source)",
    "review-rejected": "flagged code that the instructor rejected (course review)",
    "never-ran": "the cell never ran: the notebook stopped before it",
    "no-answers": "the hidden tests recorded no answers (the cell did not run to its end)",
    "timeout": "stopped at the time limit (a loop that never ends?)",
    "not-answered": "not answered: the code still raises NotImplementedError",
    "visible-test-failed": "a visible test failed though the hidden tests passed",
    "test-failed": "a test failed after the first hidden test (its message is not kept)",
    "error": "the code raised an error of its own kind",
}


def describe_code(code: str) -> str:
    """What a code in a result means, in a line: the grader's own, an error's kind, or a check's diagnosis."""
    if code in GRADER_CODES:
        return GRADER_CODES[code]
    if code.startswith("error-"):
        return f"the code raised {code.removeprefix('error-')}"
    return describe(code)


@dataclass
class CellResult:
    """One test cell: the points it got, and why it lost any (in the grader's own words)."""

    score: float
    max_score: float
    reason: str = ""  # one line, empty when the cell passed
    codes: list[str] = field(default_factory=list)  # diagnoses the checks named (stable codes, describe_code)
    detail: str = ""  # the whole message, for the feedback page (the reason is its first line and likely cause)
    auto_score: float | None = None  # the grader's score, kept where the instructor's manual score replaced it
    manual_why: str = ""  # why the instructor set the score (course score ... --why, or formgrader's comment)

    @property
    def manual(self) -> bool:
        return self.auto_score is not None


@dataclass
class Flag:
    """Code the rules check cannot judge alone ("needs review"): the instructor accepts or rejects it."""

    id: str  # stable for the same line of the same submission: what a decision refers to
    cell: str  # where: the cell's grade_id, or "cell N"
    line: int
    code: str  # the student's own line
    why: str
    decision: str = "pending"  # "pending", "accepted" or "rejected" (course review)


@dataclass
class Result:
    """One student's grade for one exercise: the total, each test cell, a reason a person can read."""

    student: str
    score: float
    max_score: float
    reason: str
    cells: dict[str, CellResult] = field(default_factory=dict)  # grade_id -> its result, in notebook order
    flags: list[Flag] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what the grader repaired or noticed on the way
    submitted: str = ""
    sha256: str = ""  # of the submitted file: --resume skips a student whose file is unchanged
    seconds: float = 0.0  # in the sandbox
    resumed: bool = False  # kept from an earlier batch (--resume), not graded again

    @property
    def ran(self) -> bool:
        """False when the notebook could not be run at all (unreadable, say)."""
        return bool(self.cells)

    @property
    def pending_review(self) -> list[Flag]:
        return [f for f in self.flags if f.decision == "pending"]

    @property
    def manual(self) -> bool:
        """True when the instructor set the score of a test cell by hand."""
        return any(c.manual for c in self.cells.values())

    def to_json(self) -> dict:
        data = asdict(self)
        data.pop("resumed")
        return data

    @classmethod
    def from_json(cls, data: dict) -> Result:
        known = {f.name for f in fields(cls)}
        data = {k: v for k, v in data.items() if k in known}
        data["cells"] = {k: CellResult(**v) for k, v in data.get("cells", {}).items()}
        data["flags"] = [Flag(**f) for f in data.get("flags", [])]
        return cls(**data)


def printable(text: str) -> str:
    """`text` with every character a terminal or a page would act on (escape codes, control characters)
    written out as \\x.. instead: what a student wrote is shown, never obeyed."""
    return "".join(c if c.isprintable() or c in "\n\t" else repr(c)[1:-1] for c in text)


def one_line(message: str) -> str:
    """A message's first line, plus its 'likely cause' line where the course's checks gave one."""
    lines = [line.strip() for line in message.strip().splitlines() if line.strip()]
    if not lines:
        return ""
    cause = next((line for line in lines[1:] if line.startswith("likely cause:")), None)
    return f"{lines[0]} ({cause})" if cause else lines[0]


def summarize(cells: dict[str, CellResult], notes: list[str], flags: list[Flag]) -> tuple[float, float, str]:
    """Total score, maximum, and the one-line reason: every cell that lost points or was scored by hand, then notes
    and open flags."""
    reasons = [f"{grade_id}: manual score {cell.score:g}/{cell.max_score:g} ({cell.manual_why.replace('; ', ', ')})"
               if cell.manual
               else f"{grade_id}: {cell.reason}"
               for grade_id, cell in cells.items() if cell.manual or cell.score < cell.max_score]
    reason = "; ".join(reasons) if reasons else "all tests passed"
    pending = [f for f in flags if f.decision == "pending"]
    extra = list(notes)
    if pending:
        more = f" and {len(pending) - 1} more" if len(pending) > 1 else ""
        extra.append(f"needs review: {pending[0].cell} line {pending[0].line}: {pending[0].why}{more}")
    if extra:
        reason += "; " + "; ".join(extra)
    return sum(c.score for c in cells.values()), sum(c.max_score for c in cells.values()), reason


def write(path: Path, result: Result) -> None:
    """Write the result atomically: a reader never sees half a file, a crash never leaves one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(handle, "w") as f:
        json.dump(result.to_json(), f, indent=1)
    os.replace(temporary, path)


def read(path: Path) -> Result | None:
    """The result stored at `path`, or None if there is none (or it cannot be read)."""
    try:
        return Result.from_json(json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):
        return None


def format_table(results: list[Result], width: int = 100) -> str:
    """A plain-text table: student, score (* where the instructor set a cell's score by hand), and every reason,
    wrapped to fit `width`."""
    if not results:
        return "(no submissions)"
    name_width = max(7, *(len(r.student) for r in results))
    lines = [f"{'student':<{name_width}}  {'score':>9}  reason", f"{'-' * name_width}  {'-' * 9}  {'-' * 6}"]
    indent = " " * (name_width + 13)
    for r in results:
        first = f"{r.student:<{name_width}}  {r.score:>4g}/{r.max_score:<4g}{'*' if r.manual else ' '} "
        for i, reason in enumerate(r.reason.split("; ")):
            lead = first if i == 0 else indent
            lines.append(textwrap.fill(reason, max(width, 60), initial_indent=lead, subsequent_indent=indent + "  "))
    if any(r.manual for r in results):
        lines.append("* a manual score: the instructor's word (course score), kept at every later course grade")
    return "\n".join(lines)
