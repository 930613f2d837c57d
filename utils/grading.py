"""How a hidden test hands the student's answers to the grader, which checks them again in its own process.

A hidden test is written as two functions and one call:

    def answers():          # runs the student's code; the only place that may touch it
        ...
        return {"grad_w": grad_w, ...}

    def check(got):         # compares with references it computes itself (torch.autograd, float64)
        assert_grads_match(got["grad_w"], expected_w, "w")

    graded("test_neuron_backward", answers, check)

In the student's kernel `graded` runs `answers()`, turns what it returned into plain tensors, saves
them for the grader (when the grader asked for them) and runs `check` there, so the notebook gives
its teaching messages as usual. The grader then runs the same hidden test again in a clean process
of its own, where `graded` skips `answers()` and checks the saved answers. Whatever the student's code
did to its own interpreter (patched `torch.allclose`, always-equal objects, a rewritten `check`) cannot
reach that second check: a student raises their grade only by computing correct answers.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

from utils.checks import as_tensor

ANSWERS_ENV = "COURSE_ANSWERS"
"""The folder where the grader wants the answers of each graded cell (unset: keep nothing)."""

_replay_folder: Path | None = None


def _plain(value: object, name: str) -> object:
    """Tensors and numbers, in lists, tuples and dicts, become plain CPU tensors.

    Anything else (an object with a custom `__eq__`, a tensor subclass's overrides) is refused here,
    with a message naming the answer, before any of its methods can run.
    """
    if value is None or type(value) in (bool, str):
        return value
    if type(value) in (list, tuple):
        return [_plain(v, f"{name or 'answers'}[{i}]") for i, v in enumerate(value)]
    if type(value) is dict:
        return {str(k): _plain(v, f"{name}[{k!r}]" if name else str(k)) for k, v in value.items()}
    return as_tensor(value, name).cpu().clone()


def _answers_file(folder: str | Path, cell: str) -> Path:
    return Path(folder) / f"{cell}.pt"


def graded(cell: str, answers: Callable[[], dict], check: Callable[[dict], None]) -> None:
    """Run `answers()` (the student's code), record its results for the grader, and `check` them."""
    if _replay_folder is not None:  # the grader's own process: no student code here
        path = _answers_file(_replay_folder, cell)
        if not path.exists():
            raise AssertionError(f"{cell}: the notebook recorded no answers for this test (did the cell run?)")
        check(torch.load(path, weights_only=True))
        return
    got = _plain(answers(), "")
    folder = os.environ.get(ANSWERS_ENV)
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        torch.save(got, _answers_file(folder, cell))
    check(got)


@contextmanager
def replaying(folder: str | Path) -> Iterator[None]:
    """Inside this block `graded` checks the answers saved in `folder` instead of running student code."""
    global _replay_folder
    previous, _replay_folder = _replay_folder, Path(folder)
    try:
        yield
    finally:
        _replay_folder = previous
