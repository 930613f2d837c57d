"""How a hidden test hands the student's answers to the grader, which checks them again in its own process.

A hidden test is written as two functions and one call:

    def answers():          # runs the student's code; the only place that may touch it
        ...
        return {"grad_w": grad_w, ...}

    def check(got):         # compares with references it computes itself (torch.autograd, float64)
        assert_grads_match(got["grad_w"], expected_w, "w")

    graded("test_backward", answers, check, raised={"RuntimeError": "a hint for a student whose code raised it"})

In the student's kernel `graded` runs `answers()` and turns what it returned into plain tensors. Under
`course grade` it saves them for the grader and stops there; elsewhere (stock `nbgrader autograde`) it
runs `check` in the kernel, whose errors nbgrader scores. The grader runs the same hidden test again in a
clean process of its own, where `graded` skips `answers()` and checks the saved answers. Whatever the student's code
did to its own interpreter (patched `torch.allclose`, always-equal objects, a rewritten `check`) cannot
reach that second check: a student raises their grade only by computing correct answers.

What crosses from the student's process to the grader is data the student's code could have shaped, so
`answers()` returns tensors, numbers, booleans and None (in lists and dicts), never text: a hidden test
that needs to record how something went records a number and lets `check` say it in words. When the
student's code raises, the grader learns only the exception's kind (one of Python's own), and `raised`
maps kinds to the hint to give.
"""

from __future__ import annotations

import builtins
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

from utils.checks import as_tensor

ANSWERS_ENV = "COURSE_ANSWERS"
"""The folder where the grader wants the answers of each graded cell (unset: keep nothing)."""

REFUSED = "__refused__"
"""Recorded in place of answers when one of them is no tensor or number (the grader then says so)."""
RAISED = "__raised__"
"""Recorded in place of answers when the student's code raised: the exception's kind, nothing else."""
BUILTIN_ERRORS = frozenset(n for n, v in vars(builtins).items() if isinstance(v, type) and issubclass(v, BaseException))

_replayed: dict[str, object] | None = None


class AnswersRaised(AssertionError):
    """In the grader's re-check: the student's code raised `kind` while the hidden test ran it.

    hint: what to tell the student, as text or as `utils.diagnoses.mistake(text, code)` (its codes are kept).
    """

    def __init__(self, kind: str, hint: str | AssertionError | None):
        text = str(hint) if hint is not None else None
        super().__init__(text or f"the code this test calls raised {kind}")
        self.kind, self.hint = kind, text
        self.codes = tuple(getattr(hint, "codes", ()))


def _plain(value: object, name: str) -> object:
    """Tensors and numbers, in lists, tuples and dicts, become plain CPU tensors.

    Anything else (an object with a custom `__eq__`, a tensor subclass's overrides) is refused here,
    with a message naming the answer, before any of its methods can run.
    """
    if value is None or type(value) is bool:
        return value
    if type(value) in (list, tuple):
        return [_plain(v, f"{name or 'answers'}[{i}]") for i, v in enumerate(value)]
    if type(value) is dict:
        return {str(k): _plain(v, f"{name}[{k!r}]" if name else str(k)) for k, v in value.items()}
    return as_tensor(value, name).cpu().clone()


def _save(got: object, folder: str, cell: str) -> None:
    Path(folder).mkdir(parents=True, exist_ok=True)
    torch.save(got, Path(folder) / f"{cell}.pt")


def graded(cell: str, answers: Callable[[], object], check: Callable[[object], None],
           raised: dict[str, str | AssertionError] | None = None) -> None:
    """Run `answers()` (the student's code), record its results for the grader, and `check` them.

    raised: for an exception kind the student's code may raise ("RuntimeError"), the hint to give (text, or
    `utils.diagnoses.mistake(text, code)` to name the mistake for the class report too).
    """
    if _replayed is not None:  # the grader's own process: no student code here
        if cell not in _replayed:
            raise AssertionError(f"{cell}: the notebook recorded no answers for this test (did the cell run?)")
        got = _replayed[cell]
        if type(got) is dict and type(got.get(RAISED)) is str:
            kind = got[RAISED] if got[RAISED] in BUILTIN_ERRORS else "Exception"
            raise AnswersRaised(kind, (raised or {}).get(kind))
        check(got)
        return
    folder = os.environ.get(ANSWERS_ENV)
    try:
        result = answers()
    except Exception as error:  # the student's code raised: the grader learns its kind only
        if folder:
            kind = type(error).__name__
            _save({RAISED: kind if kind in BUILTIN_ERRORS else "Exception"}, folder, cell)
        raise
    try:
        got = _plain(result, "")
    except AssertionError:  # an answer that is no tensor: the grader is told so, and says it in its own words
        if folder:
            _save({REFUSED: True}, folder, cell)
        raise
    if folder:  # the grader checks them in its own process: here it only records them
        _save(got, folder, cell)
        return
    check(got)


@contextmanager
def replaying(answers: dict[str, object]) -> Iterator[None]:
    """Inside this block `graded(cell, ...)` checks `answers[cell]` instead of running student code."""
    global _replayed
    previous, _replayed = _replayed, answers
    try:
        yield
    finally:
        _replayed = previous
