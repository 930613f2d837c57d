"""Scalar expressions as data: run one on any autograd engine, and check the result against torch.autograd.

An expression is a list of leaf values and a list of steps. The nodes are numbered leaves first,
then one per step, and each step applies an operation to earlier nodes (an int operand) or to a
Python number (a float operand): `("mul", 0, 1)` is x0 * x1, `("add", 1.5, 2)` is 1.5 + v2,
`("pow", 2, 3.0)` is v2 ** 3. The last step is the output y. The same steps run on a student's
`Value` class and on torch tensors, since both understand `+ - * / **`, unary `-`, and the
methods `relu()`, `tanh()` and `exp()`.

When an engine's gradients are wrong, `assert_engine_matches` names the likely mistake by
replaying the expression on a small model of the exercise's engine with that mistake built in
(`utils.engine_mistakes`).
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Sequence

import torch

from utils.checks import as_tensor
from utils.engine_mistakes import close, diagnose

Step = tuple  # (operation, operand, ...): an operand is a node index (int) or a constant (float)

APPLY: dict[str, Callable] = {
    "add": operator.add,
    "sub": operator.sub,
    "mul": operator.mul,
    "div": operator.truediv,
    "pow": operator.pow,
    "neg": operator.neg,
    "relu": lambda a: a.relu(),
    "tanh": lambda a: a.tanh(),
    "exp": lambda a: a.exp(),
}
_INFIX = {"add": "+", "sub": "-", "mul": "*", "div": "/"}

def _names(num_leaves: int, num_steps: int, leaf_names: Sequence[str] | None) -> list[str]:
    leaves = list(leaf_names) if leaf_names else [f"x{i}" for i in range(num_leaves)]
    return leaves + [f"v{i}" for i in range(num_leaves, num_leaves + num_steps - 1)] + ["y"]


def describe(leaf_values: Sequence[float], steps: Sequence[Step], leaf_names: Sequence[str] | None = None) -> str:
    """The expression as Python code that builds it with `Value`, e.g. `x0 = Value(2); y = x0 ** 2`."""
    names = _names(len(leaf_values), len(steps), leaf_names)

    def operand(p: int | float) -> str:
        return names[p] if isinstance(p, int) else (f"({p:g})" if p < 0 else f"{p:g}")

    lines = [f"{names[i]} = Value({v:g})" for i, v in enumerate(leaf_values)]
    for k, (op, *args) in enumerate(steps):
        if op in _INFIX:
            code = f"{operand(args[0])} {_INFIX[op]} {operand(args[1])}"
        elif op == "pow":
            code = f"{operand(args[0])} ** {operand(args[1])}"
        elif op == "neg":
            code = f"-{operand(args[0])}"
        else:
            code = f"{operand(args[0])}.{op}()"
        lines.append(f"{names[len(leaf_values) + k]} = {code}")
    return "; ".join(lines)


def evaluate(steps: Sequence[Step], leaves: Sequence) -> list:
    """Run the steps on `leaves` (Values, tensors, ...); return every node, leaves first, the output last."""
    nodes = list(leaves)
    for op, *args in steps:
        nodes.append(APPLY[op](*(nodes[p] if isinstance(p, int) else p for p in args)))
    return nodes


def run_engine(value_class: Callable[[float], object], leaf_values: Sequence[float], steps: Sequence[Step]) -> dict:
    """Build the expression from `value_class` leaves, call backward() on the output, return floats."""
    leaves = [value_class(v) for v in leaf_values]
    y = evaluate(steps, leaves)[-1]
    y.backward()
    return {"value": float(y.data), "grads": [float(leaf.grad) for leaf in leaves]}


def reference(leaf_values: Sequence[float], steps: Sequence[Step]) -> dict:
    """The output and the gradient of every leaf, from torch.autograd in float64."""
    leaves = [torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in leaf_values]
    y = evaluate(steps, leaves)[-1]
    grads = torch.autograd.grad(y, leaves, allow_unused=True)
    return {"value": y.item(), "grads": [0.0 if g is None else g.item() for g in grads]}


def is_safe(leaf_values: Sequence[float], steps: Sequence[Step]) -> bool:
    """True when no step sits near a kink or a pole, outside its domain, or overflows."""
    with torch.no_grad():
        nodes = evaluate(steps, [torch.tensor(v, dtype=torch.float64) for v in leaf_values])
    values = [n.item() for n in nodes]
    for op, *args in steps:
        a, b = (values[p] if isinstance(p, int) else p for p in (*args, 0.0)[:2])
        if (
            (op == "relu" and abs(a) < 0.05)
            or (op == "pow" and b < 0 and abs(a) < 0.25)
            or (op == "pow" and 0 < b < 1 and a < 0.25)
            or (op == "div" and abs(b) < 0.25)
            or (op == "exp" and a > 4)
        ):
            return False
    if not all(math.isfinite(v) and abs(v) < 1e3 for v in values):
        return False
    return all(math.isfinite(g) and abs(g) < 1e4 for g in reference(leaf_values, steps)["grads"])


def reused(steps: Sequence[Step]) -> list[int]:
    """The nodes that more than one operand uses (leaves or intermediate results), in order."""
    uses = [p for _, *args in steps for p in args if isinstance(p, int)]
    return sorted({p for p in uses if uses.count(p) > 1})


def random_expression(
    gen: torch.Generator, num_leaves: int = 3, num_steps: int = 6, shared: bool = True
) -> tuple[list[float], list[Step]]:
    """A random, safe expression that uses every leaf; with `shared`, some node is used twice.

    Without `shared` the expression is a tree: every node feeds exactly one operation.
    """

    def pick(n: int) -> int:
        return int(torch.randint(n, (1,), generator=gen))

    def coin(p: float) -> bool:
        return float(torch.rand((), generator=gen)) < p

    constants = (-2.0, -1.5, -0.5, 0.5, 1.5, 2.0, 3.0)
    unary, binary = ("pow", "relu", "tanh", "exp", "neg"), ("add", "add", "mul", "mul", "sub", "div")
    while True:
        leaf_values = [round(float(v), 2) for v in torch.randn(num_leaves, generator=gen, dtype=torch.float64)]
        pool, steps = list(range(num_leaves)), []  # pool: the nodes no step has used yet
        while len(steps) < num_steps or len(pool) > 1:
            combine = len(steps) >= num_steps
            op = binary[pick(len(binary))] if combine or coin(0.55) else unary[pick(len(unary))]
            i = pool.pop(pick(len(pool)))
            if op == "pow":
                step = (op, i, (2.0, 3.0, -1.0, 0.5)[pick(4)])
            elif op in unary:
                step = (op, i)
            else:
                if pool and (combine or coin(0.6)):
                    j = pool.pop(pick(len(pool)))
                elif shared and coin(0.5):
                    j = pick(num_leaves + len(steps))  # any node so far, i itself included: a reuse
                else:
                    j = constants[pick(len(constants))]
                step = (op, i, j) if coin(0.7) else (op, j, i)
            steps.append(step)
            pool.append(num_leaves + len(steps) - 1)
        if (reused(steps) or not shared) and is_safe(leaf_values, steps):
            return leaf_values, steps


def _number(value: object, name: str) -> float:
    t = as_tensor(value, name)
    if t.numel() != 1:
        raise AssertionError(f"`{name}` should be one number, but it has shape {tuple(t.shape)}.")
    return t.double().item()


def assert_engine_matches(
    got: dict, leaf_values: Sequence[float], steps: Sequence[Step], leaf_names: Sequence[str] | None = None
) -> None:
    """Assert that an engine's output and leaf gradients (as `run_engine` returns them) match torch.autograd.

    The message shows the expression as code a student can run, and names the likely mistake.
    """
    names = _names(len(leaf_values), len(steps), leaf_names)
    code = describe(leaf_values, steps, leaf_names)
    if type(got) is not dict or set(got) != {"value", "grads"}:
        raise AssertionError(f"The engine's answer should be {{'value': ..., 'grads': [...]}}, for: {code}")
    expected = reference(leaf_values, steps)
    value = _number(got["value"], "y.data")
    if not close(value, expected["value"]):
        single = f"the forward pass of {steps[0][0]} is wrong."
        cause = single if len(steps) == 1 else "check each operation's forward value."
        raise AssertionError(
            f"The value of `y` is wrong: got {value:.6g}, expected {expected['value']:.6g}.\n"
            f"  in: {code}\n  likely cause: {cause}"
        )
    if type(got["grads"]) is not list or len(got["grads"]) != len(leaf_values):
        raise AssertionError(f"Expected one gradient per leaf ({len(leaf_values)}), for: {code}")
    grads = [_number(g, f"{names[i]}.grad") for i, g in enumerate(got["grads"])]
    for i, (g, e) in enumerate(zip(grads, expected["grads"])):
        if not close(g, e):
            raise AssertionError(
                f"The gradient for `{names[i]}` is wrong: got {g:.6g}, expected {e:.6g}.\n"
                f"  in: {code}; y.backward()\n"
                f"  likely cause: {diagnose(grads, leaf_values, steps, [names[p] for p in reused(steps)])}"
            )


def check_engine(
    value_class: Callable[[float], object],
    leaf_values: Sequence[float],
    steps: Sequence[Step],
    leaf_names: Sequence[str] | None = None,
) -> None:
    """Run the expression on `value_class`, call backward(), and assert it all matches torch.autograd."""
    assert_engine_matches(run_engine(value_class, leaf_values, steps), leaf_values, steps, leaf_names)
