"""Diagnoses as data: every mistake a check recognises raises its stable code, and the grader's trusted re-check
records the codes of its own checks (never anything the student's process said)."""

import io
import sys
from pathlib import Path

import nbformat
import pytest
import torch

from autograders.course import Course, Exercise, TestCell
from autograders.results import GRADER_CODES, describe_code
from autograders.trusted import recheck
from utils.checks import (
    as_tensor,
    assert_accuracy,
    assert_grads_match,
    assert_values_match,
    forbid_autograd,
    forbid_calls,
    forbid_torch,
)
from utils.diagnoses import DIAGNOSES, codes_of, mistake
from utils.engine_mistakes import RULES, emulate
from utils.engine_training import assert_training_matches, descend
from utils.expressions import assert_engine_matches, assert_order_valid, assert_zero_grad, engine_rules, reference

COURSE = Course(Path(__file__).resolve().parents[1])
E = torch.randn(3, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
LABELS = torch.randint(0, 2, (200,), generator=torch.Generator().manual_seed(0))
SQUARE = torch.tensor([[1.0, 2.0], [3.0, 4.0]], dtype=torch.float64)
WITH_NAN = E.clone().index_put_((torch.tensor(1), torch.tensor(2)), torch.tensor(float("nan"), dtype=torch.float64))
WITH_INF = E.clone().index_put_((torch.tensor(1), torch.tensor(2)), torch.tensor(float("inf"), dtype=torch.float64))
SHARED = ([0.7, -1.2], [("mul", 0, 1), ("tanh", 2), ("add", 3, 0)])  # x0 feeds two operations
CHAIN = ([0.3], [("mul", 0, 2.0), ("tanh", 1), ("mul", 2, 3.0)])


def accuracy(predictions, at_least=90):
    return lambda: assert_accuracy(predictions, LABELS, at_least, "y_hat")


def engine(grads, value=None, case=SHARED):
    leaf_values, steps = case
    right = reference(leaf_values, steps)
    got = {"value": right["value"] if value is None else value, "grads": grads}
    return lambda: assert_engine_matches(got, leaf_values, steps)


def order(order, parents=((1, 2), (), ())):
    got = {"parents": torch.tensor([list(p) + [-1] * (2 - len(p)) for p in parents]), "names": torch.tensor([4, 0, 1]),
           "order": None if order is None else torch.tensor(order)}
    return lambda: assert_order_valid(got, [1.0, 2.0], [("mul", 0, 1)])


def zero_grad(zeroed, second):
    got = {"first": [2.0, 1.0], "zeroed": zeroed, "names": torch.tensor([2, 0, 1]), "second": second}
    return lambda: assert_zero_grad(got, [1.0, 2.0], [("mul", 0, 1)])


TRAINING = ([0.5, -0.4, 0.1, -0.3, 0.8, -0.2, 0.7, -0.6, 0.05], [[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]],
            [0.0, 1.0, 1.0, 0.0], 0.5, 3)


def training(params=None, losses=None, **options):
    start, X, y, lr, num_steps = TRAINING
    right_params, right_losses = descend(start, X, y, lr, num_steps, **options)
    got = {"params": (right_params if params is None else params).tolist(),
           "losses": (right_losses if losses is None else losses).tolist()}
    return lambda: assert_training_matches(got, *TRAINING)


def changes_the_recursion_limit():
    with engine_rules(lambda x: x, "backward()"):
        sys.setrecursionlimit(5000)


def calls_backward():
    x = torch.ones(2, requires_grad=True)
    with forbid_autograd("f"):
        (x * 2).sum().backward()


def calls_softmax():
    with forbid_calls("f", ["softmax"]):
        torch.softmax(torch.ones(3), 0)


def calls_torch():
    with forbid_torch("f"):
        torch.ones(1)


right_training_params, right_training_losses = descend(*TRAINING)

CASES = {  # code -> a wrong answer that a check names so
    "grad-not-zeroed": lambda: assert_grads_match(2 * E, E, "w"),
    "grad-all-zero": lambda: assert_grads_match(torch.zeros_like(E), E, "w"),
    "grad-none": lambda: assert_grads_match(None, E, "w"),
    "sign-flipped": lambda: assert_grads_match(-E, E, "w"),
    "transposed": lambda: assert_values_match(SQUARE.T, SQUARE, "w"),
    "factor-missing": lambda: assert_grads_match(E / 2, E, "w"),
    "factor-repeated": lambda: assert_values_match(3 * E, E, "a"),
    "constant-factor": lambda: assert_grads_match(1.5 * E, E, "w"),
    "classes-swapped": lambda: assert_values_match(torch.tensor([1.0, 0.0, 1.0]), torch.tensor([0.0, 1.0, 0.0]), "y"),
    "nan": lambda: assert_grads_match(WITH_NAN, E, "w"),
    "inf": lambda: assert_grads_match(WITH_INF, E, "w"),
    "summed-over-batch": lambda: assert_grads_match(E.sum(), E, "w"),
    "not-summed": lambda: assert_grads_match(E[0], E.sum(), "w"),
    "reshaped": lambda: assert_grads_match(E.reshape(2, 6), E, "w"),
    "wrong-shape": lambda: assert_grads_match(E[:2], E, "w"),
    "not-float": lambda: assert_values_match(torch.tensor([1, 2]), torch.tensor([1.0, 2.0]), "a"),
    "value-none": lambda: assert_values_match(None, E, "a"),
    "not-tensor": lambda: as_tensor("0101", "y_hat"),
    "mismatch": lambda: assert_grads_match(E + torch.linspace(0, 1, 12, dtype=torch.float64).reshape(3, 4), E, "w"),
    "scores-not-labels": accuracy(torch.sigmoid(torch.randn(200))),
    "unknown-labels": accuracy(2 * LABELS - 1),
    "constant-prediction": accuracy(torch.zeros_like(LABELS)),
    "untrained": accuracy(torch.randint(0, 2, (200,), generator=torch.Generator().manual_seed(1))),
    "undertrained": accuracy(torch.where(torch.arange(200) < 40, 1 - LABELS, LABELS)),
    "used-autograd": calls_backward,
    "used-forbidden-call": calls_softmax,
    "used-torch": calls_torch,
    "engine-malformed": lambda: assert_engine_matches({"value": 1.0}, *SHARED),
    "engine-forward": engine([0.0, 0.0], value=123.0),
    "engine-overwrite": engine(emulate(*SHARED, accumulate=False)),
    "engine-recursive": engine(emulate([0.5], [("mul", 0, 0), ("tanh", 1), ("mul", 2, 1)], recursive=True),
                               case=([0.5], [("mul", 0, 0), ("tanh", 1), ("mul", 2, 1)])),
    "no-chain-factor": engine(emulate(*CHAIN, unchained=("tanh",)), case=CHAIN),
    "engine-derivative-sigmoid": engine(emulate([0.3], [("sigmoid", 0)], wrong="sigmoid output"), case=([0.3], [("sigmoid", 0)])),
    "engine-shared": engine([1.0, 1.0]),
    "engine-grads": engine([1.0], case=([0.3], [("mul", 0, 2.0), ("tanh", 1)])),
    "order-not-list": order(None),
    "order-foreign": order([1, 2, -1, 0]),
    "order-duplicate": order([1, 1, 2, 0]),
    "order-incomplete": order([1, 0]),
    "order-not-last": order([0, 1, 2]),
    "order-parent-after": order([1, 2, 0], parents=((1,), (2,), ())),
    "zero-grad-incomplete": zero_grad([0.0, 2.0, 0.0], [2.0, 1.0]),
    "zero-grad-unstable": zero_grad([0.0, 0.0, 0.0], [4.0, 1.0]),
    "recursion-limit-changed": changes_the_recursion_limit,
    "training-malformed": lambda: assert_training_matches({"params": None, "losses": None}, *TRAINING),
    "training-losses": training(losses=torch.zeros(3, dtype=torch.float64)),
    "losses-shifted": training(losses=descend(*TRAINING[:-1], TRAINING[-1] + 1)[1][1:]),
    "training-network": training(params=torch.zeros(9, dtype=torch.float64), losses=torch.zeros(3, dtype=torch.float64)),
    "training-stuck": training(params=torch.tensor(TRAINING[0], dtype=torch.float64)),
    "training-uphill": training(sign=-1.0, losses=right_training_losses),
    "training-steps": training(params=right_training_params + 0.1, losses=right_training_losses),
}
SINGLE_STEPS = {op: ([0.3, 0.8], [(op, 0, 1)] if op in ("add", "mul", "sub", "div") else [(op, 0, 3.0)] if op == "pow"
                      else [(op, 0)]) for op in RULES}


@pytest.mark.parametrize("code", sorted(CASES))
def test_each_mistake_raises_its_code(code):
    with pytest.raises(AssertionError) as info:
        CASES[code]()
    assert type(info.value) is AssertionError  # a notebook shows "AssertionError: ...", as before
    assert codes_of(info.value) == [code], str(info.value)


@pytest.mark.parametrize("op", sorted(RULES))
def test_a_wrong_local_derivative_gets_the_code_of_its_operation(op):
    leaf_values, steps = SINGLE_STEPS[op]
    wrong = [g + 1.0 for g in reference(leaf_values, steps)["grads"]]
    with pytest.raises(AssertionError) as info:
        engine(wrong, case=(leaf_values, steps))()
    assert codes_of(info.value) == [f"engine-derivative-{op}"], str(info.value)


def test_the_accumulated_training_gradients_share_the_code_of_accumulated_gradients():
    with pytest.raises(AssertionError) as info:
        training(clear=False, losses=right_training_losses)()
    assert codes_of(info.value) == ["grad-not-zeroed"] and "pile up" in str(info.value)


def hidden_tests() -> str:
    return "\n".join(t.hidden for name in COURSE.exercise_names() for t in COURSE.exercise(name).tests)


def test_every_code_is_shown_raised_or_named_by_a_hidden_test_and_described():
    """The codes that only the exercises' own hidden tests name are checked on the samples (tests/expected)."""
    shown = set(CASES) | {f"engine-derivative-{op}" for op in RULES}
    named = {code for code in DIAGNOSES if f'"{code}"' in hidden_tests()}
    assert set(DIAGNOSES) <= shown | named, set(DIAGNOSES) - shown - named
    assert not set(DIAGNOSES) & set(GRADER_CODES)
    for code in [*DIAGNOSES, *GRADER_CODES, "error-NameError"]:
        assert describe_code(code) and describe_code(code) != code


def test_codes_outside_the_catalogue_are_not_kept():
    error = mistake("a message", "grad-none", "made-up", 3)
    assert codes_of(error) == ["grad-none"]
    assert codes_of(AssertionError("no codes")) == []


# ---- the grader's re-check: codes come from its own checks


HIDDEN = '''
import torch
from utils.checks import assert_grads_match
from utils.diagnoses import mistake
from utils.grading import graded

def answers():
    return grad_of_x()

def check(got):
    assert_grads_match(got, torch.tensor([1.0, 2.0]), "x")

graded("test_grad", answers, check, raised={"RecursionError": mistake("too deep", "recursion-too-deep"),
                                            "ValueError": "a hint without a code"})
'''


def saved(value) -> bytes:
    buffer = io.BytesIO()
    torch.save(value, buffer)
    return buffer.getvalue()


@pytest.fixture
def exercise():
    return Exercise("ex", Path("ex.ipynb"), nbformat.v4.new_notebook(), [TestCell("test_grad", 1, HIDDEN)])


def test_the_trusted_recheck_records_the_codes_of_its_own_checks(exercise):
    found = recheck(exercise, {"test_grad": saved(torch.tensor([2.0, 4.0]))})["test_grad"]
    assert not found.passed and found.codes == ("grad-not-zeroed",) and "exactly 2x" in found.message
    assert recheck(exercise, {"test_grad": saved(torch.tensor([1.0, 2.0]))})["test_grad"].codes == ()


def test_a_raised_kind_gets_the_code_of_its_hint_and_nothing_else(exercise):
    deep = recheck(exercise, {"test_grad": saved({"__raised__": "RecursionError"})})["test_grad"]
    assert deep.raised == "RecursionError" and deep.codes == ("recursion-too-deep",) and deep.message == "too deep"
    plain = recheck(exercise, {"test_grad": saved({"__raised__": "ValueError"})})["test_grad"]
    assert plain.codes == () and plain.message == "a hint without a code"


def test_what_the_student_recorded_cannot_name_a_code(exercise):
    # Answers are tensors and numbers only: text that looks like a code is refused before any check runs.
    for answers in ({"codes": ["grad-none"]}, ["sign-flipped"], {"__raised__": "grad-none"}):
        found = recheck(exercise, {"test_grad": saved(answers)})["test_grad"]
        assert not found.passed and found.codes == (), (answers, found)
    refused = recheck(exercise, {"test_grad": saved({"__refused__": True})})["test_grad"]
    assert refused.codes == ("not-tensor",)


def test_every_code_a_hidden_test_names_is_in_the_catalogue():
    import ast

    named = set()
    for node in ast.walk(ast.parse(hidden_tests())):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "mistake":
            for argument in node.args[1:]:
                named |= {c.value for c in ast.walk(argument) if isinstance(c, ast.Constant) and isinstance(c.value, str)}
    assert named and named <= set(DIAGNOSES), named - set(DIAGNOSES)
