"""Compare a student's gradients and values with a reference, with messages a student can act on; and guards
(`forbid_autograd`, `forbid_calls`, `forbid_torch`) that stop a test when the student's code breaks a rule.

Visible tests (in a student's notebook) and hidden tests (in the autograder) both call these.
Everything is compared in float64 on the CPU. On success nothing is printed, to stdout or stderr:
stock `nbgrader autograde` scores a test cell that writes to stderr as 0 (`course grade` does not).
A failure is an AssertionError that also carries the code of the mistake it recognised (`utils.diagnoses`),
which the grader records for the class report.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack, contextmanager

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode

from utils.diagnoses import mistake

# torch.testing.assert_close's defaults, keyed by the less precise of the two dtypes.
TOLERANCES = {
    torch.float16: (1e-3, 1e-5),
    torch.bfloat16: (1.6e-2, 1e-5),
    torch.float32: (1.3e-6, 1e-5),
    torch.float64: (1e-7, 1e-7),
}


def _plain_numbers(value: object) -> bool:
    if type(value) in (int, float):
        return True
    return type(value) in (list, tuple) and all(_plain_numbers(v) for v in value)


def as_tensor(value: object, name: str) -> torch.Tensor:
    """Turn a tensor, number, NumPy array, nested list of numbers, or list of same-shape tensors into a plain
    detached tensor (a list of 0-d tensors, one per step, becomes a vector).

    Anything else is refused before any of its methods run, so an object with a custom
    `__eq__` (or a tensor subclass that overrides comparisons) cannot fake a match.
    """
    if isinstance(value, torch.Tensor):
        with torch._C.DisableTorchFunctionSubclass():
            return torch.Tensor.as_subclass(value, torch.Tensor).detach()
    if _plain_numbers(value):
        return torch.tensor(value, dtype=torch.float64)
    if type(value) in (list, tuple) and value and any(isinstance(v, torch.Tensor) for v in value):
        parts = [as_tensor(v, f"{name}[{i}]") for i, v in enumerate(value)]
        shapes = sorted({tuple(p.shape) for p in parts})
        if len(shapes) > 1:
            raise mistake(
                f"`{name}` is a list of tensors of different shapes ({', '.join(map(str, shapes[:3]))}): "
                f"its entries should all have the same shape.",
                "wrong-shape",
            )
        dtype = parts[0].dtype
        for p in parts[1:]:
            dtype = torch.promote_types(dtype, p.dtype)
        return torch.stack([p.to(parts[0].device, dtype) for p in parts])
    if type(value).__module__ == "numpy" and hasattr(value, "dtype"):
        import numpy as np

        if isinstance(value, (np.ndarray, np.generic)):
            return torch.from_numpy(np.array(value, copy=True))
    raise mistake(f"`{name}` should be a tensor (or a number), but it is a {type(value).__name__}.", "not-tensor")


def _tolerances(*dtypes: torch.dtype) -> tuple[float, float]:
    rtol, atol = max((TOLERANCES.get(d, TOLERANCES[torch.float64]) for d in dtypes), key=lambda t: t[0])
    return rtol, atol


def _fmt(x: float) -> str:
    return f"{x:.6g}"


def _constant_ratio(actual: torch.Tensor, expected: torch.Tensor, atol: float) -> float | None:
    """The k with actual == k * expected everywhere, if there is one (k != 1)."""
    scale = expected.abs().max().item()
    significant = expected.abs() > max(atol, 1e-6 * scale)
    if not significant.any():
        return None
    ratios = actual[significant] / expected[significant]
    k = ratios.median().item()
    if not math.isfinite(k) or abs(k - 1) < 1e-9:
        return None
    if not torch.allclose(actual, k * expected, rtol=1e-6, atol=max(atol, 1e-9 * scale)):
        return None
    return k


def _likely_cause(actual: torch.Tensor, expected: torch.Tensor, kind: str, atol: float) -> tuple[str, str] | None:
    """Name the mistake behind a mismatch when the numbers show a familiar pattern: (its code, in words)."""
    if torch.isnan(actual).any() and not torch.isnan(expected).any():
        return "nan", "it contains NaN: look for 0/0, sqrt or log of a negative number, or inf - inf."
    if torch.isinf(actual).any() and not torch.isinf(expected).any():
        return "inf", "it contains inf: look for a division by zero or an overflowing exp."
    if kind == "gradient" and (actual == 0).all() and (expected != 0).any():
        return "grad-all-zero", (
            "every entry is 0: was the gradient zeroed after backward(), or did the input pass "
            "through detach() or torch.no_grad() on its way to the output?"
        )
    if ((expected == 0) | (expected == 1)).all() and (expected == 1).any() and torch.equal(actual, 1 - expected):
        return "classes-swapped", (
            "every 0 came out as 1 and every 1 as 0: the two classes are swapped (check which one is labelled 1)."
        )
    if actual.ndim == 2 and actual.shape[0] == actual.shape[1] and torch.allclose(actual, expected.T):
        return "transposed", (
            "it equals the transpose of the expected value: check the order of a matrix product (X.T @ g, not g.T @ X)."
        )
    k = _constant_ratio(actual, expected, atol)
    if k is None:
        return None
    if abs(k + 1) < 1e-6:
        return "sign-flipped", "the sign is flipped: check the sign of each local derivative (and of the update step)."
    rounded = round(k)
    if rounded >= 2 and abs(k - rounded) < 1e-6:
        if kind == "gradient":
            return "grad-not-zeroed", (
                f"it is exactly {rounded}x the expected value: did you forget to zero the gradients? "
                f"They accumulate over backward() calls (set x.grad = None or call optimizer.zero_grad())."
            )
        return "factor-repeated", f"it is exactly {rounded}x the expected value: look for a constant factor counted twice."
    inverse = round(1 / k) if k != 0 else 0
    if inverse >= 2 and abs(1 / k - inverse) < 1e-6:
        return "factor-missing", (
            f"it is exactly 1/{inverse} of the expected value: a factor of {inverse} is missing "
            f"(the power rule: d(x^n)/dx = n*x^(n-1))."
        )
    return "constant-factor", (
        f"it is off by the same factor ({_fmt(k)}) everywhere: check a constant (a mean for a sum, a 1/2, a step size)."
    )


def _shape_hint(actual: torch.Tensor, expected: torch.Tensor) -> tuple[str, str]:
    """What a shape mismatch likely means: (its code, in words)."""
    if actual.ndim == 2 and tuple(actual.shape) == tuple(expected.shape)[::-1]:
        return "transposed", "it looks transposed."
    if actual.numel() == 1 and expected.numel() > 1:
        return "summed-over-batch", "one number came where a tensor was expected: did you sum (or call .item()) over the batch?"
    if expected.numel() == 1 and actual.numel() > 1:
        return "not-summed", "a tensor came where one number was expected: did you forget to sum over the batch?"
    if actual.numel() == expected.numel():
        return "reshaped", "the right number of entries in the wrong shape: check a reshape, view, squeeze or unsqueeze."
    return "wrong-shape", "a gradient has the shape of the tensor it belongs to; check which dimensions you summed over."


def _compare(actual: object, expected: object, name: str, kind: str, rtol: float | None, atol: float | None) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # under stock nbgrader, a warning on stderr would cost the student the cell
        expected_t = as_tensor(expected, "expected")
        if actual is None:
            if kind == "gradient":
                raise mistake(
                    f"The gradient for `{name}` is None: `{name}` is not connected to the output, "
                    f"or it was created without requires_grad=True, or backward() was never called.",
                    "grad-none",
                )
            raise mistake(f"`{name}` is None: did the function forget to return its result?", "value-none")
        actual_t = as_tensor(actual, name)
        if not actual_t.is_floating_point():
            raise mistake(
                f"The {kind} for `{name}` has dtype {actual_t.dtype}, but a floating-point tensor was expected: "
                f"create tensors with float values (3.0, not 3) or convert with .double().",
                "not-float",
            )
        default_rtol, default_atol = _tolerances(actual_t.dtype, expected_t.dtype)
        rtol = default_rtol if rtol is None else rtol
        atol = default_atol if atol is None else atol
        a = actual_t.to("cpu", torch.float64)
        e = expected_t.to("cpu", torch.float64)
        if a.shape != e.shape:
            code, hint = _shape_hint(a, e)
            raise mistake(
                f"The {kind} for `{name}` has shape {tuple(a.shape)}, but shape {tuple(e.shape)} was expected: " + hint,
                code,
            )
        close = torch.isclose(a, e, rtol=rtol, atol=atol, equal_nan=True)
        if close.all():
            return
        excess = torch.where(close, torch.zeros_like(a), (a - e).abs() - (atol + rtol * e.abs()))
        excess = torch.nan_to_num(excess, nan=math.inf)
        worst = int(excess.reshape(-1).argmax())
        index = tuple(int(i) for i in torch.unravel_index(torch.tensor(worst), a.shape)) if a.ndim else ()
        rel = ((a - e).abs() / (a.abs() + e.abs()).clamp_min(1e-12)).nan_to_num(nan=1.0).max().item()
        lines = [
            f"The {kind} for `{name}` does not match the reference.",
            f"  shape {tuple(a.shape)}: {int((~close).sum())} of {a.numel()} entries differ; "
            f"relative error {rel:.2e} (about 1e-7 or less means right, 1e-2 or more means a mistake)",
            f"  worst entry {list(index) if index else '(the only one)'}: got {_fmt(a[index].item())}, "
            f"expected {_fmt(e[index].item())}",
        ]
        code, cause = _likely_cause(a, e, kind, atol) or ("mismatch", "")
        if cause:
            lines.append(f"  likely cause: {cause}")
        raise mistake("\n".join(lines), code)


def assert_values_match(
    actual: object, expected: object, name: str = "value", *, rtol: float | None = None, atol: float | None = None
) -> None:
    """Assert that `actual` equals `expected` within tolerances, explaining any difference."""
    _compare(actual, expected, name, "value", rtol, atol)


def assert_grads_match(
    actual: object, expected: object, name: str = "x", *, rtol: float | None = None, atol: float | None = None
) -> None:
    """Assert that the gradient `actual` for tensor `name` matches `expected`, naming the likely mistake."""
    _compare(actual, expected, name, "gradient", rtol, atol)


def assert_accuracy(predictions: object, labels: object, at_least: float, name: str = "predictions") -> None:
    """Assert that class `predictions` (one label per example) equal `labels` on at least `at_least` percent of them."""
    if predictions is None:
        raise mistake(f"`{name}` is None: did the function forget to return its predictions?", "value-none")
    y = as_tensor(labels, "labels").reshape(-1).to("cpu", torch.int64)
    y_hat = as_tensor(predictions, name).to("cpu")
    n = len(y)
    if tuple(y_hat.shape) != (n,):
        if y_hat.ndim == 2 and y_hat.shape[0] == n and y_hat.shape[1] > 1:
            code, hint = "scores-not-labels", "a row of scores per example: turn each row into one label (argmax(dim=1))."
        elif y_hat.numel() == n:
            code, hint = "reshaped", ("the right number of labels in the wrong shape: drop the extra dimension "
                                      "(e.g. logits.squeeze(1)).")
        else:
            code, hint = "wrong-shape", "one label per example is expected; check which examples were predicted."
        raise mistake(f"`{name}` has shape {tuple(y_hat.shape)}, but shape ({n},) was expected: {hint}", code)
    if y_hat.is_floating_point():
        odd = ~torch.isfinite(y_hat) | (y_hat != y_hat.round())
        if odd.any():
            raise mistake(
                f"`{name}` should hold class labels (whole numbers such as 0 and 1), but it holds values such as "
                f"{_fmt(y_hat[odd][0].item())}: scores or probabilities? Turn them into labels first "
                f"(logit > 0, probability > 0.5, or argmax).",
                "scores-not-labels",
            )
    y_hat = y_hat.to(torch.int64)
    classes, counts = y.unique(return_counts=True)
    strays = sorted(set(y_hat.unique().tolist()) - set(classes.tolist()))
    if strays:
        raise mistake(
            f"`{name}` holds labels that never occur among the true ones ({strays[:5]}); the labels are {classes.tolist()[:10]}.",
            "unknown-labels",
        )
    correct = y_hat == y
    accuracy = 100 * correct.double().mean().item()
    if accuracy >= at_least:
        return
    majority = 100 * counts.max().item() / n
    if len(classes) == 2 and 100 - accuracy >= at_least:
        code, cause = "classes-swapped", (
            "the two classes are swapped: it is wrong almost exactly where it should be right. Check which class "
            "is labelled 1, in the training targets and in the predictions."
        )
    elif len(y_hat.unique()) == 1:
        code, cause = "constant-prediction", (
            f"it predicts {y_hat[0].item()} for every example: the model learned nothing useful "
            f"(is optimizer.step() called after backward()?), or the threshold that turns scores into labels is off."
        )
    elif accuracy <= majority + 5:
        code, cause = "untrained", (
            f"that is about what guessing gives ({majority:.0f}% for always the most common label): the model looks "
            f"untrained. Does the training loop call zero_grad(), backward() and step() for every batch, and do the "
            f"predictions come from the trained model, in eval mode?"
        )
    else:
        code, cause = "undertrained", (
            "it has learned something, but not enough. Are the gradients zeroed before each backward()? "
            "(Otherwise they pile up across batches.) Then try more epochs, another learning rate, normalized "
            "inputs or more hidden units."
        )
    raise mistake(
        f"`{name}`: accuracy {accuracy:.2f}% ({int(correct.sum())} of {n} right), below the required {at_least:g}%.\n"
        f"  likely cause: {cause}",
        code,
    )


# ---- guards: a visible test runs the student's code inside one, so a broken rule shows before submission.
# They are advice (code can undo anything in its own process); the grader checks the rules on the source.


def _torch_name(func: object) -> str:
    """A torch function as a student writes it: torch.tanh, Tensor.item, ..."""
    name = getattr(func, "__name__", None) or str(func)
    owner = (getattr(func, "__qualname__", None) or "").split(".")[0]
    return f"Tensor.{name}" if owner in ("Tensor", "TensorBase") else f"torch.{name}"


def _op_name(func: object) -> str:
    """torch's own name for a function or an aten operator: softmax for torch.softmax, F.softmax, aten._softmax."""
    name = func.overloadpacket.__name__ if isinstance(func, torch._ops.OpOverload) else getattr(func, "__name__", "")
    return re.sub(r"^_+|^special_|(2d)?_forward$", "", name)


class _Refusal:
    """A guard's rule (`refusal(func)`: a message, or None to let the call run) and what it refused so far."""

    def __init__(self, refusal: Callable[[object], str | None], code: str):
        super().__init__()
        self.refusal, self.code, self.refused = refusal, code, []

    def _refuse_or_call(self, func, args, kwargs):
        message = self.refusal(func)
        if message:
            self.refused.append(message)
            raise mistake(message, self.code)
        return func(*args, **(kwargs or {}))


class _Refuse(_Refusal, TorchFunctionMode):
    """Sees every torch function and tensor method a Python line calls."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        return self._refuse_or_call(func, args, kwargs)


class _RefuseOps(_Refusal, TorchDispatchMode):
    """Sees every aten operator, those that autograd's engine runs in a backward pass too."""

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        return self._refuse_or_call(func, args, kwargs)


@contextmanager
def _refusing(*guards: _Refusal) -> Iterator[None]:
    """Run the block under the guards; fail after it too if one refused a call, in case the code caught it."""
    with ExitStack() as stack:
        for guard in guards:
            stack.enter_context(guard)
        yield
    refused = [(message, guard.code) for guard in guards for message in guard.refused]
    if refused:
        raise mistake(*refused[0])


@contextmanager
def forbid_autograd(what: str) -> Iterator[None]:
    """Fail if the code inside computes a derivative with autograd, in reverse or in forward mode.

    Reverse mode (backward(), torch.autograd.grad, torch.func.grad/vjp/jacrev, torch.autograd.functional)
    always enters the engine through `torch.autograd._engine_run_backward`, so that is patched. Forward mode
    (torch.func.jvp/jacfwd/hessian, torch.autograd.forward_ad, jacobian(..., strategy="forward-mode"))
    always makes a dual tensor with `torch._make_dual`, which a TorchFunctionMode sees. Plain tensor code
    runs as usual. For exercises whose point is a backward pass derived by hand.
    """
    import torch.autograd as autograd

    def refusal(how: str) -> str:
        return (
            f"{what} called autograd ({how}): in this exercise the backward pass is derived by hand, "
            f"using only the forward values and the chain rule."
        )

    reverse = refusal("backward(), torch.autograd.grad or a torch.func transform")
    forward = refusal("forward mode: torch.func.jvp, jacfwd or hessian, or a dual tensor of torch.autograd.forward_ad")
    engine_calls = []

    def refuse_engine(*args, **kwargs):
        engine_calls.append(reverse)
        raise mistake(reverse, "used-autograd")

    original = autograd._engine_run_backward
    autograd._engine_run_backward = refuse_engine
    try:
        with _refusing(_Refuse(lambda func: forward if _op_name(func) == "make_dual" else None, "used-autograd")):
            yield
    finally:
        autograd._engine_run_backward = original
    if engine_calls:
        raise mistake(engine_calls[0], "used-autograd")


@contextmanager
def forbid_calls(what: str, names: Iterable[str]) -> Iterator[None]:
    """Fail if the code inside uses one of torch's functions `names` (e.g. "softmax"), however it is reached:
    torch.softmax, Tensor.softmax, F.softmax, torch.special.softmax, nn.Softmax, or inside a backward pass.
    """
    names = set(names)

    def refusal(func: object) -> str | None:
        name = _op_name(func)
        if name not in names:
            return None
        return (f"{what} used torch's {name} (directly or through another function), which this exercise asks you "
                "to write yourself.")

    with _refusing(_Refuse(refusal, "used-forbidden-call"), _RefuseOps(refusal, "used-forbidden-call")):
        yield


@contextmanager
def forbid_torch(what: str) -> Iterator[None]:
    """Fail if the code inside calls torch at all: for code built from Python floats and `math` alone."""

    def refusal(func: object) -> str:
        return (
            f"{what} called {_torch_name(func)}: here it works with Python floats and the math module "
            f"(math.exp, math.tanh, math.log, ...), without torch."
        )

    with _refusing(_Refuse(refusal, "used-torch")):
        yield
