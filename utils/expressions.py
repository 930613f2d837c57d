"""Scalar expressions as data: run one on a student's autograd engine (exercise 06), and check the result
against torch.autograd.

An expression is a list of leaf values and a list of steps. The nodes are numbered leaves first,
then one per step, and each step applies an operation to earlier nodes (an int operand) or to a
Python number (a float operand): `("mul", 0, 1)` is x0 * x1, `("add", 1.5, 2)` is 1.5 + v2,
`("pow", 2, 3.0)` is v2 ** 3. The last step is the output y. The same steps run on a student's
`Value` class and on torch tensors, since both understand `+ - * / **`, unary `-`, and the
methods `relu()`, `tanh()`, `exp()`, `log()` and `sigmoid()`.

Each check comes in two halves, so that a hidden test can record what the student's engine gave
(numbers only) and the grader can judge it in its own process: `run_engine`, `run_order` and
`run_zero_grad` run the engine (without torch, at Python's default recursion limit), and
`assert_engine_matches`, `assert_order_valid` and `assert_zero_grad` judge what they returned;
`check_engine`, `check_topological_order` and `check_zero_grad` do both, for visible tests.
When an engine's gradients are wrong, `assert_engine_matches` names the likely mistake by
replaying the expression on a small model of the exercise's engine with that mistake built in
(`utils.engine_mistakes`).
"""

from __future__ import annotations

import math
import numbers
import operator
import sys
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import torch

from utils.checks import as_tensor, forbid_torch
from utils.diagnoses import mistake
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
    "log": lambda a: a.log(),
    "sigmoid": lambda a: a.sigmoid(),
}
_INFIX = {"add": "+", "sub": "-", "mul": "*", "div": "/"}
SHOWN_STEPS = 12  # a longer expression is shown by its first and last steps


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
    if len(steps) > SHOWN_STEPS:
        shown = len(leaf_values) + SHOWN_STEPS // 2
        lines = lines[:shown] + [f"... ({len(lines) - shown - 2:,} more steps like these)"] + lines[-2:]
    return "; ".join(lines)


def evaluate(steps: Sequence[Step], leaves: Sequence) -> list:
    """Run the steps on `leaves` (Values, tensors, ...); return every node, leaves first, the output last."""
    nodes = list(leaves)
    for op, *args in steps:
        nodes.append(APPLY[op](*(nodes[p] if isinstance(p, int) else p for p in args)))
    return nodes


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
            or (op == "log" and a < 0.25)
            or (op == "sigmoid" and abs(a) > 30)  # flat there, and math.exp(-a) overflows beyond 709
        ):
            return False
    if not all(math.isfinite(v) and abs(v) < 1e3 for v in values):
        return False
    return all(math.isfinite(g) and abs(g) < 1e4 for g in reference(leaf_values, steps)["grads"])


def reused(steps: Sequence[Step]) -> list[int]:
    """The nodes that more than one operand uses (leaves or intermediate results), in order."""
    uses = Counter(p for _, *args in steps for p in args if isinstance(p, int))
    return sorted(p for p, count in uses.items() if count > 1)


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
    unary = ("pow", "relu", "tanh", "exp", "neg", "log", "sigmoid")
    binary = ("add", "add", "mul", "mul", "sub", "div")
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


def chain(num_steps: int, start: float = 0.5) -> tuple[list[float], list[Step]]:
    """x * 0.999 + 0.001, again and again, num_steps operations in all: an expression as deep as it is long."""
    return [start], [("mul", k, 0.999) if k % 2 == 0 else ("add", k, 0.001) for k in range(num_steps)]


# ---- running a student's engine: its rules hold (no torch), at Python's default recursion limit


RECURSION_LIMIT = 1000  # Python's default: a recursive walk of a long chain runs out of it
RECURSION = (
    "{what} went too deep in recursion: a chain of thousands of operations needs as many nested calls, and "
    "Python allows about {limit:,}. Walk the graph with a loop instead: topological_order() with a list used as "
    "a stack of the Values still to finish, and backward() and zero_grad() going through the list it returns. "
    "Keep the recursion limit as it is."
)


@contextmanager
def engine_rules(code: Callable, what: str) -> Iterator[None]:
    """Run the block as exercise 06 demands of `code` (the Value class, or a function built on it): no torch, and
    Python's default recursion limit, which it may not raise. A RecursionError inside is raised again with a
    message that says what to do (`what` names the method that recursed)."""
    previous = sys.getrecursionlimit()
    sys.setrecursionlimit(RECURSION_LIMIT)
    try:
        with forbid_torch(getattr(code, "__name__", "the engine")):
            yield
        changed = sys.getrecursionlimit() != RECURSION_LIMIT
    except RecursionError:
        raise RecursionError(RECURSION.format(what=what, limit=RECURSION_LIMIT)) from None  # not 1,000 frames of it
    finally:
        sys.setrecursionlimit(previous)
    if changed:
        raise mistake(f"{what} changed Python's recursion limit: {RECURSION.format(what=what, limit=RECURSION_LIMIT)}",
                      "recursion-limit-changed")


def run_engine(value_class: Callable[[float], object], leaf_values: Sequence[float], steps: Sequence[Step]) -> dict:
    """Build the expression from `value_class` leaves, call backward() on the output, return floats."""
    with engine_rules(value_class, "backward()"):
        leaves = [value_class(v) for v in leaf_values]
        y = evaluate(steps, leaves)[-1]
        y.backward()
    return {"value": as_float(y.data), "grads": [as_float(leaf.grad) for leaf in leaves]}


def as_float(value: object) -> float:
    """A number as a float; anything else (None, a Value) as NaN, which no check takes for a right answer."""
    return float(value) if isinstance(value, numbers.Real) else math.nan


def _graph_of(y: object, nodes: Sequence) -> tuple[list, list[list[int]], list[int]]:
    """Every Value y depends on (following _parents, without recursion), y first; each one's parents as indices
    into that list; and which of `nodes` (the leaves, then one per step) each one is (-1: none of them)."""
    found, index, stack = [y], {id(y): 0}, [y]
    while stack:
        for parent in getattr(stack.pop(), "_parents", ()):
            if id(parent) not in index:
                index[id(parent)] = len(found)
                found.append(parent)
                stack.append(parent)
    named = {id(v): k for k, v in enumerate(nodes)}
    parents = [[index[id(p)] for p in getattr(v, "_parents", ())] for v in found]
    return found, parents, [named.get(id(v), -1) for v in found]


def _indices(rows: list[list[int]]) -> torch.Tensor:
    """Lists of indices of different lengths as one int64 tensor, padded with -1."""
    width = max(1, *(len(row) for row in rows))
    return torch.tensor([row + [-1] * (width - len(row)) for row in rows], dtype=torch.int64)


def run_order(value_class: Callable[[float], object], leaf_values: Sequence[float], steps: Sequence[Step]) -> dict:
    """Build the expression and call y.topological_order(); return the graph and the order as node indices.

    Recorded as numbers (the grader checks them in its own process): "parents" and "names" as `_graph_of`
    gives them, "order" the index of each Value returned (-1: not one of y's graph), or None for no list.
    """
    with engine_rules(value_class, "topological_order()"):
        nodes = evaluate(steps, [value_class(v) for v in leaf_values])
        order = nodes[-1].topological_order()
        found, parents, labels = _graph_of(nodes[-1], nodes)
    index = {id(v): k for k, v in enumerate(found)}
    listed = [index.get(id(v), -1) for v in order] if isinstance(order, (list, tuple)) else None
    return {
        "parents": _indices(parents),
        "names": torch.tensor(labels, dtype=torch.int64),
        "order": None if listed is None else torch.tensor(listed, dtype=torch.int64),
    }


def run_zero_grad(value_class: Callable[[float], object], leaf_values: Sequence[float], steps: Sequence[Step]) -> dict:
    """y.backward(), y.zero_grad(), y.backward() again: the leaves' grads after each backward, every Value's after
    zero_grad ("zeroed", in `_graph_of`'s order, with "names" to tell which is which)."""
    with engine_rules(value_class, "zero_grad() or backward()"):
        leaves = [value_class(v) for v in leaf_values]
        nodes = evaluate(steps, leaves)
        y = nodes[-1]
        y.backward()
        first = [as_float(leaf.grad) for leaf in leaves]
        y.zero_grad()
        found, _, labels = _graph_of(y, nodes)
        zeroed = [as_float(v.grad) for v in found]
        y.backward()
    second = [as_float(leaf.grad) for leaf in leaves]
    return {"first": first, "zeroed": zeroed, "names": torch.tensor(labels, dtype=torch.int64), "second": second}


# ---- checking what an engine gave, with the likely mistake named


def _number(value: object, name: str) -> float:
    t = as_tensor(value, name)
    if t.numel() != 1:
        raise mistake(f"`{name}` should be one number, but it has shape {tuple(t.shape)}.", "engine-malformed")
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
        raise mistake(f"The engine's answer should be {{'value': ..., 'grads': [...]}}, for: {code}", "engine-malformed")
    expected = reference(leaf_values, steps)
    value = _number(got["value"], "y.data")
    if not close(value, expected["value"]):
        single = f"the forward pass of {steps[0][0]} is wrong."
        cause = single if len(steps) == 1 else "check each operation's forward value."
        raise mistake(
            f"The value of `y` is wrong: got {value:.6g}, expected {expected['value']:.6g}.\n"
            f"  in: {code}\n  likely cause: {cause}",
            "engine-forward",
        )
    if type(got["grads"]) is not list or len(got["grads"]) != len(leaf_values):
        raise mistake(f"Expected one gradient per leaf ({len(leaf_values)}), for: {code}", "engine-malformed")
    grads = [_number(g, f"{names[i]}.grad") for i, g in enumerate(got["grads"])]
    for i, (g, e) in enumerate(zip(grads, expected["grads"])):
        if not close(g, e):
            diagnosis, cause = diagnose(grads, leaf_values, steps, [names[p] for p in reused(steps)])
            raise mistake(
                f"The gradient for `{names[i]}` is wrong: got {g:.6g}, expected {e:.6g}.\n"
                f"  in: {code}; y.backward()\n"
                f"  likely cause: {cause}",
                diagnosis,
            )


def _namer(got: dict, leaf_values: Sequence[float], steps: Sequence[Step], leaf_names: Sequence[str] | None) -> Callable:
    names = _names(len(leaf_values), len(steps), leaf_names)
    labels = [int(k) for k in got["names"].tolist()]

    def name(node: int) -> str:
        k = labels[node]
        return f"`{names[k]}`" if 0 <= k < len(names) else "a Value made inside an operation (a number wrapped in a Value, say)"

    return name


def assert_order_valid(
    got: dict, leaf_values: Sequence[float], steps: Sequence[Step], leaf_names: Sequence[str] | None = None
) -> None:
    """Assert that the order `run_order` recorded lists every Value y depends on once, each after the Values it
    was computed from, and y last."""
    name = _namer(got, leaf_values, steps, leaf_names)
    where = f"\n  in: {describe(leaf_values, steps, leaf_names)}; order = y.topological_order()"
    parents = [[int(p) for p in row if p >= 0] for row in got["parents"].tolist()]
    if got["order"] is None:
        raise mistake(f"topological_order() should return a list of Values.{where}", "order-not-list")
    order = [int(k) for k in got["order"].reshape(-1).tolist()]
    strays = sum(k < 0 for k in order)
    if strays:
        raise mistake(
            f"The order holds {strays} thing(s) that are not Values of y's graph: it should hold exactly the "
            f"Values y depends on (following _parents from y down to the leaves), y included.{where}",
            "order-foreign",
        )
    counts = Counter(order)
    twice = next((k for k in order if counts[k] > 1), None)
    if twice is not None:
        raise mistake(
            f"{name(twice)} appears {counts[twice]} times in the order: each Value must appear once. Remember the "
            f"Values already visited (in a set) and skip them.{where}",
            "order-duplicate",
        )
    missing = [k for k in range(len(parents)) if k not in counts]
    if missing:
        raise mistake(
            f"The order leaves out {len(missing)} of the {len(parents)} Values y depends on, among them "
            f"{name(missing[0])}: follow _parents from y all the way down to the leaves, and include y.{where}",
            "order-incomplete",
        )
    if order[-1] != 0:
        raise mistake(
            f"The order should end with y, which is computed from all the others, but it ends with {name(order[-1])}: "
            f"every Value comes after the Values it was computed from (leaves first, y last).{where}",
            "order-not-last",
        )
    position = {k: i for i, k in enumerate(order)}
    for k in order:
        early = next((p for p in parents[k] if position[p] > position[k]), None)
        if early is not None:
            raise mistake(
                f"{name(k)} comes before {name(early)}, which it was computed from: in a topological order every "
                f"Value comes after all of its _parents. Add a Value to the order only once all its parents are "
                f"in it (after the walk below it has finished).{where}",
                "order-parent-after",
            )


def assert_zero_grad(
    got: dict, leaf_values: Sequence[float], steps: Sequence[Step], leaf_names: Sequence[str] | None = None
) -> None:
    """Assert that y.zero_grad() (as `run_zero_grad` recorded it) set every grad in y's graph to 0, so that the
    next y.backward() gave the same gradients as the first."""
    name = _namer(got, leaf_values, steps, leaf_names)
    names = _names(len(leaf_values), len(steps), leaf_names)
    where = f"\n  in: {describe(leaf_values, steps, leaf_names)}; y.backward(); y.zero_grad()"
    zeroed = [_number(g, "a grad after zero_grad()") for g in got["zeroed"]]
    leaves = {k for k, label in enumerate(got["names"].tolist()) if 0 <= label < len(leaf_values)}
    left = sorted((k for k, g in enumerate(zeroed) if g != 0), key=lambda k: k not in leaves)  # a leaf first
    if left:
        raise mistake(
            f"After y.zero_grad(), {len(left)} of the {len(zeroed)} Values y depends on still hold a grad other "
            f"than 0, among them {name(left[0])}: zero_grad must set .grad = 0 on every one of them, y and the "
            f"leaves included (go through y.topological_order()).{where}",
            "zero-grad-incomplete",
        )
    first = [_number(g, "a leaf's grad") for g in got["first"]]
    second = [_number(g, "a leaf's grad") for g in got["second"]]
    for i, (a, b) in enumerate(zip(first, second)):
        if not close(a, b):
            raise mistake(
                f"After y.zero_grad(), a second y.backward() gave `{names[i]}` the grad {b:.6g}, where the first "
                f"gave {a:.6g}: once every grad is 0 again, backward must give the same gradients.{where}; y.backward()",
                "zero-grad-unstable",
            )


def check_engine(
    value_class: Callable[[float], object],
    leaf_values: Sequence[float],
    steps: Sequence[Step],
    leaf_names: Sequence[str] | None = None,
) -> None:
    """Run the expression on `value_class`, call backward(), and assert it all matches torch.autograd."""
    assert_engine_matches(run_engine(value_class, leaf_values, steps), leaf_values, steps, leaf_names)


def check_topological_order(
    value_class: Callable[[float], object],
    leaf_values: Sequence[float],
    steps: Sequence[Step],
    leaf_names: Sequence[str] | None = None,
) -> None:
    """Build the expression on `value_class` and assert that y.topological_order() is one."""
    assert_order_valid(run_order(value_class, leaf_values, steps), leaf_values, steps, leaf_names)


def check_zero_grad(
    value_class: Callable[[float], object],
    leaf_values: Sequence[float],
    steps: Sequence[Step],
    leaf_names: Sequence[str] | None = None,
) -> None:
    """Build the expression on `value_class` and assert that y.zero_grad() resets every gradient of its graph."""
    assert_zero_grad(run_zero_grad(value_class, leaf_values, steps), leaf_values, steps, leaf_names)
