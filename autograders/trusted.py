"""Check a submission's recorded answers again, in the grader's own process, with the hidden tests' `check`.

The student's code never runs here: each hidden test block of the source notebook is executed in a
fresh namespace while `utils.grading.graded` replays the answers the sandbox recorded instead of
calling `answers()`. Patched comparisons, always-equal objects or a rewritten test in the
student's kernel cannot reach this check.
"""

from __future__ import annotations

import contextlib
import io
import re
import tempfile
import warnings
from pathlib import Path

import nbformat

HIDDEN = re.compile(r"### BEGIN HIDDEN TESTS\n(.*?)### END HIDDEN TESTS", re.DOTALL)


def hidden_tests(source: Path) -> dict[str, str]:
    """grade_id -> the code of its hidden tests, for every test cell that hands answers to the grader."""
    found = {}
    for cell in nbformat.read(source, as_version=4).cells:
        nbgrader = cell.get("metadata", {}).get("nbgrader", {})
        blocks = HIDDEN.findall(cell.source)
        if nbgrader.get("grade") and blocks and any("graded(" in block for block in blocks):
            found[nbgrader["grade_id"]] = "\n".join(blocks)
    return found


def recheck(source: Path, answers: dict[str, bytes]) -> dict[str, str | None]:
    """grade_id -> None where the recorded answers pass the hidden test here, else the reason."""
    from utils.grading import replaying

    verdicts: dict[str, str | None] = {}
    tests = hidden_tests(source)
    if not tests:
        return verdicts
    with tempfile.TemporaryDirectory(prefix="course-answers-") as folder:
        for name, data in answers.items():
            if name in tests:  # only the cells the source knows: nothing else is written
                (Path(folder) / f"{name}.pt").write_bytes(data)
        for grade_id, code in tests.items():
            namespace = {"__name__": f"hidden_test_{grade_id}"}
            try:
                with replaying(folder), warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
                    warnings.simplefilter("ignore")
                    exec(compile(code, f"<hidden tests of {grade_id}>", "exec"), namespace)
            except AssertionError as error:
                verdicts[grade_id] = str(error) or "a hidden test failed"
            except Exception as error:  # unreadable or malformed answers
                verdicts[grade_id] = f"{type(error).__name__}: {error}"
            else:
                verdicts[grade_id] = None
    return verdicts
