"""Check a submission's recorded answers again, in the grader's own process, with the hidden tests' `check`.

The student's code never runs here: each hidden test block of the source notebook is executed in a
fresh namespace while `utils.grading.graded` replays the recorded answers instead of calling
`answers()`. Patched comparisons, always-equal objects or a rewritten test in the student's kernel
cannot reach this check.

The checks run here, so the codes of the mistakes they recognise (`utils.diagnoses`) come from here too:
they are read off the exception the grader's own check raised, never from anything the student's process said.

The answers are the student's data: they are loaded as tensors only (`weights_only`), and refused
unless they are tensors, numbers and lists of them of a modest shape, so that a message about them
(a shape, a value) cannot carry more than a few numbers back to the student.
"""

from __future__ import annotations

import contextlib
import io
import re
import warnings
from dataclasses import dataclass

import torch

from autograders.course import Exercise
from utils.diagnoses import codes_of
from utils.grading import BUILTIN_ERRORS, RAISED

MESSAGE_CHARS = 1500
MAX_DIMS = 8
MAX_ELEMENTS = 10_000_000  # per tensor: no hidden test records more (predictions on 10,000 digits are 10,000)
MAX_EXTENT = 1_000_000  # per dimension
_KEY = re.compile(r"^[\w.()\[\]' -]{1,64}$")
MALFORMED = "the recorded answers are not tensors or numbers of a usual shape, so they could not be checked"
NOT_TENSORS = ("an answer should be a tensor (or a number), but it is an object of another kind: "
               "return tensors, as the task asks")


@dataclass(frozen=True)
class Check:
    """The grader's own verdict on one test cell's recorded answers."""

    passed: bool
    message: str = ""
    raised: str | None = None  # the kind of exception the student's code raised, when that is what happened
    codes: tuple[str, ...] = ()  # the mistakes the check recognised (utils.diagnoses.DIAGNOSES)


def _sane(value: object, depth: int = 0) -> bool:
    """True for what a hidden test hands over: plain tensors, numbers, None, and lists or dicts of them."""
    if depth > 12:
        return False
    if value is None or type(value) in (bool, int, float):
        return True
    if type(value) is torch.Tensor:
        if value.ndim > MAX_DIMS or value.numel() > MAX_ELEMENTS or any(n > MAX_EXTENT for n in value.shape):
            return False
        if value.numel() == 0:  # an empty shape carries nothing but the shape: keep it small
            return value.ndim <= 2 and all(n <= 64 for n in value.shape)
        # every element its own storage: an expanded (stride-0) view would make a small file a huge tensor
        return value.untyped_storage().nbytes() >= value.numel() * value.element_size()
    if type(value) in (list, tuple):
        return len(value) <= 100_000 and all(_sane(v, depth + 1) for v in value)
    if type(value) is dict:
        return all(type(k) is str and _KEY.match(k) and _sane(v, depth + 1) for k, v in value.items())
    return False


def load_answers(data: bytes) -> object:
    """The answers one test cell recorded, or ValueError if they are not what a hidden test records."""
    try:
        value = torch.load(io.BytesIO(data), weights_only=True)
    except Exception as error:
        raise ValueError(MALFORMED) from error
    if type(value) is dict and set(value) == {RAISED}:  # the student's code raised: only the kind came back
        if value[RAISED] not in BUILTIN_ERRORS and value[RAISED] != "Exception":
            raise ValueError(MALFORMED)
        return value
    if not _sane(value):
        raise ValueError(MALFORMED)
    return value


def _short(message: str) -> str:
    message = message.strip() or "a hidden test failed"
    return message if len(message) <= MESSAGE_CHARS else message[:MESSAGE_CHARS] + " [...]"


def recheck(exercise: Exercise, answers: dict[str, bytes]) -> dict[str, Check]:
    """grade_id -> the grader's verdict, for every test cell that recorded answers (the others are absent)."""
    from utils.grading import REFUSED, AnswersRaised, replaying

    verdicts: dict[str, Check] = {}
    for grade_id, code in exercise.compiled_hidden.items():
        if grade_id not in answers:
            continue
        try:
            loaded = {grade_id: load_answers(answers[grade_id])}
        except ValueError as error:
            verdicts[grade_id] = Check(False, str(error))
            continue
        if type(loaded[grade_id]) is dict and loaded[grade_id].get(REFUSED) is True:
            verdicts[grade_id] = Check(False, NOT_TENSORS, codes=("not-tensor",))
            continue
        namespace = {"__name__": f"hidden_test_{grade_id}"}
        try:
            with replaying(loaded), warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
                warnings.simplefilter("ignore")
                exec(code, namespace)
        except AnswersRaised as error:  # the hint the hidden test gives for it, if any
            verdicts[grade_id] = Check(False, _short(error.hint) if error.hint else "", raised=error.kind,
                                       codes=tuple(codes_of(error)))
        except AssertionError as error:
            verdicts[grade_id] = Check(False, _short(str(error)), codes=tuple(codes_of(error)))
        except Exception as error:  # answers of the wrong kind for this test (a list where a tensor was due, say)
            verdicts[grade_id] = Check(False, _short(f"{type(error).__name__}: {error}"))
        else:
            verdicts[grade_id] = Check(True)
    return verdicts
