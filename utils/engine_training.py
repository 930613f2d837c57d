"""Gradient descent with exercise 06's engine on a 2-2-1 network, checked against the same descent in torch.

The network takes a point x = (x1, x2) to two tanh units and then one sigmoid unit,

    h1 = tanh(w11 x1 + w12 x2 + b1),  h2 = tanh(w21 x1 + w22 x2 + b2),  p = sigmoid(v1 h1 + v2 h2 + c),

and its loss on points with labels 0 or 1 is the mean binary cross-entropy -(y log p + (1 - y) log(1 - p)).
A student's `train(params, X, y, lr, num_steps)` returns the nine parameters after num_steps steps of
gradient descent, in the order of PARAMETERS, and the loss before each step, all as floats.
`run_training` records that (with no torch in the student's code) and `assert_training_matches` compares
it with torch.autograd's descent, naming the likely mistake; `check_training` does both.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from utils.checks import as_tensor
from utils.diagnoses import mistake
from utils.expressions import as_float, engine_rules

PARAMETERS = ("w11", "w12", "b1", "w21", "w22", "b2", "v1", "v2", "c")


def network_loss(params: torch.Tensor, X: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The mean binary cross-entropy of the 2-2-1 network with `params` (9,) on points X (n, 2) with labels y (n,)."""
    W, b = params[[0, 1, 3, 4]].reshape(2, 2), params[[2, 5]]
    p = torch.sigmoid(torch.tanh(X @ W.T + b) @ params[6:8] + params[8])
    return -(y * p.log() + (1 - y) * (1 - p).log()).mean()


def descend(
    params: Sequence[float], X: Sequence, y: Sequence[float], lr: float, num_steps: int, *, clear: bool = True, sign: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """torch.autograd's gradient descent on network_loss in float64: the parameters after it, and the loss before
    each step. With clear=False the gradients are never cleared (they pile up); sign=-1 steps uphill."""
    p = torch.tensor(params, dtype=torch.float64, requires_grad=True)
    X, y = torch.tensor(X, dtype=torch.float64), torch.tensor(y, dtype=torch.float64)
    losses = []
    for step in range(num_steps):
        loss = network_loss(p, X, y)
        loss.backward()
        losses.append(loss.item())
        with torch.no_grad():
            p -= sign * lr * p.grad
        if clear:
            p.grad = None
    return p.detach(), torch.tensor(losses, dtype=torch.float64)


def run_training(
    train: Callable, params: Sequence[float], X: Sequence, y: Sequence[float], lr: float, num_steps: int
) -> dict:
    """Call train(params, X, y, lr, num_steps) with plain lists; record what it returns as lists of floats
    (None where it returned no list, NaN for an entry that is no number)."""
    with engine_rules(train, "train()"):
        result = train(list(params), [list(x) for x in X], list(y), lr, num_steps)
    if not (isinstance(result, (tuple, list)) and len(result) == 2):
        return {"params": None, "losses": None}
    return {
        key: [as_float(v) for v in values] if isinstance(values, (list, tuple)) else None
        for key, values in zip(("params", "losses"), result)
    }


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape == b.shape and torch.allclose(a, b, rtol=1e-7, atol=1e-10)


def assert_training_matches(
    got: dict, params: Sequence[float], X: Sequence, y: Sequence[float], lr: float, num_steps: int
) -> None:
    """Assert that what `run_training` recorded is torch.autograd's descent: the same parameters, the same losses."""
    where = f"({len(X)} points, lr {lr:g})"
    if type(got) is not dict or got.get("params") is None or got.get("losses") is None:
        raise mistake(
            "train should return two lists, (params, losses): the 9 parameters after training and the loss before "
            "each step, as floats.",
            "training-malformed",
        )
    trained = as_tensor(got["params"], "params").double().reshape(-1)
    losses = as_tensor(got["losses"], "losses").double().reshape(-1)
    if trained.isnan().any() or losses.isnan().any():
        raise mistake(
            "train should return plain floats: p.data for each parameter and loss.data for each loss, not the Values.",
            "training-malformed",
        )
    if trained.shape != (len(PARAMETERS),) or losses.shape != (num_steps,):
        raise mistake(
            f"train should return the {len(PARAMETERS)} parameters ({', '.join(PARAMETERS)}) and one loss per "
            f"step ({num_steps} here), but it returned {trained.numel()} parameters and {losses.numel()} losses {where}.",
            "training-malformed",
        )
    expected, expected_losses = descend(params, X, y, lr, num_steps)
    if _same(trained, expected):
        if _same(losses, expected_losses):
            return
        k = int((losses - expected_losses).abs().argmax())
        after = _same(losses, descend(params, X, y, lr, num_steps + 1)[1][1:])
        raise mistake(
            f"The parameters after {num_steps} steps are right {where}, but losses[{k}] is {losses[k]:.6g}, expected "
            f"{expected_losses[k]:.6g}.\n  likely cause: "
            + ("losses[k] is the loss after step k, where it should be the loss before it (losses[0] the starting loss)."
               if after else "record loss.data once per step, the loss of that step's backward()."),
            "losses-shifted" if after else "training-losses",
        )
    if num_steps and not _same(losses[:1], expected_losses[:1]):
        raise mistake(
            f"The loss before the first step is {losses[0]:.6g}, expected {expected_losses[0]:.6g} {where}.\n"
            f"  likely cause: network() or the loss is not the 2-2-1 network described above: check the order of "
            f"the parameters ({', '.join(PARAMETERS)}), tanh in the hidden units and sigmoid at the output. (If a "
            f"test of your engine above fails, fix that first.)",
            "training-network",
        )
    start = torch.tensor(params, dtype=torch.float64)
    if _same(trained, start):
        code, cause = "training-stuck", (
            "the parameters did not move: every gradient came out 0, or the steps never reached the parameters. "
            "If a test of your engine above fails, fix that first. If none does, change each parameter's .data in "
            "place (p.data -= lr * p.grad) after loss.backward() and before the next zero_grad(): p = p - lr * p.grad "
            "makes a new Value that the list of parameters never sees."
        )
    elif num_steps > 1 and _same(trained, descend(params, X, y, lr, num_steps, clear=False)[0]):
        code, cause = "grad-not-zeroed", (
            "the gradients pile up across steps: each backward() adds to the parameters' .grad, so set them "
            "back to 0 first (loss.zero_grad() before loss.backward())."
        )
    elif _same(trained, descend(params, X, y, lr, num_steps, sign=-1.0)[0]):
        code, cause = "training-uphill", "the steps go uphill: descent moves against the gradient, p.data -= lr * p.grad."
    else:
        code, cause = "training-steps", (
            "the first loss is right, so network() is, but the gradients or the steps are not. If a test of your "
            "engine above fails, fix that first. If none does, check that each step calls zero_grad() before "
            "backward() and then moves every parameter by -lr * p.grad."
        )
    worst = int((trained - expected).abs().argmax())
    raise mistake(
        f"After {num_steps} step{'s' if num_steps != 1 else ''} {where}, the parameters differ from torch.autograd's "
        f"descent: {PARAMETERS[worst]} is {trained[worst]:.6g}, expected {expected[worst]:.6g}.\n  likely cause: {cause}",
        code,
    )


def check_training(train: Callable, params: Sequence[float], X: Sequence, y: Sequence[float], lr: float, num_steps: int) -> None:
    """Run train(params, X, y, lr, num_steps) and assert that it descends as torch.autograd does."""
    assert_training_matches(run_training(train, params, X, y, lr, num_steps), params, X, y, lr, num_steps)
