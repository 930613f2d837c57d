"""Scalar expressions as data: run one on any autograd engine, and check the result against torch.autograd.

An expression is a list of leaf values and a list of steps. The nodes are numbered leaves first,
then one per step, and each step applies an operation to earlier nodes (an int operand) or to a
Python number (a float operand): `("mul", 0, 1)` is x0 * x1, `("add", 1.5, 2)` is 1.5 + v2,
`("pow", 2, 3.0)` is v2 ** 3. The last step is the output y. The same steps run on a student's
`Value` class and on torch tensors, since both understand `+ - * / **`, unary `-`, and the
methods `relu()`, `tanh()` and `exp()`.

When an engine's gradients are wrong, `assert_engine_matches` names the likely mistake by
replaying the expression on a small model of the exercise's engine with that mistake built in.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Sequence

import torch

from utils.checks import as_tensor

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

RULES = {
    "add": "d(a + b)/da = d(a + b)/db = 1: both operands get out.grad unchanged.",
    "mul": "d(a * b)/da = b and d(a * b)/db = a: each operand gets the other one's data times out.grad.",
    "pow": "d(a ** c)/da = c * a ** (c - 1), times out.grad.",
    "relu": "relu'(a) = 1 where a > 0 and 0 where a < 0, times out.grad.",
    "tanh": "d tanh(a)/da = 1 - tanh(a) ** 2: square the output (out.data), not the input; times out.grad.",
    "exp": "d exp(a)/da = exp(a), which is the output itself (out.data); times out.grad.",
    "sub": "a - b is built as a + (-b), and -b as b * -1: if + and * pass on their own, look at * with a number.",
    "div": "a / b is built as a * b ** -1: if * and ** pass on their own, every _backward must multiply by out.grad.",
    "neg": "-a is built as a * -1: look at __mul__ with a Python number (it must be wrapped in a Value).",
}
CAUSES = {
    "overwrite": (
        "gradients are overwritten instead of accumulated. {shared} {is_} used more than once, so it must get the "
        "SUM of the gradients from all of its uses: in every _backward write `self.grad += ...`, not `self.grad = ...`."
    ),
    "recursive": (
        "backward() walks the graph recursively without a topological order, so a node used more than "
        "once ({shared}) passed its gradient on before all of its uses had added theirs (and then again). "
        "Sort the nodes first, each after everything it depends on, then call _backward on them in reverse "
        "order, once each."
    ),
    "no chain": (
        "{where} leaves out the chain factor: each local derivative must be multiplied by out.grad, "
        "the gradient that reached the operation's output (self.grad += local * out.grad)."
    ),
    "shared": (
        "check each operation's local derivative (test_ops checks them one at a time) and that each _backward "
        "multiplies it by out.grad. {shared} {is_} used more than once, so its gradient must also be the sum "
        "over all of its uses (+=), passed on only after all of them have arrived (reverse topological order)."
    ),
    "other": (
        "check each operation's local derivative (test_ops checks them one at a time) and that each "
        "_backward multiplies it by out.grad."
    ),
}


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


# ---- a model of the exercise's engine, with familiar mistakes built in, to diagnose wrong answers ----

WRONG_DERIVATIVES = {  # familiar wrong local derivatives, as (operation, what was written)
    "mul own": ("mul", "each operand gets its own data"),
    "pow without c": ("pow", "a ** (c - 1)"),
    "pow with exponent c": ("pow", "c * a ** c"),
    "relu output": ("relu", "the output relu(a)"),
    "tanh of input": ("tanh", "1 - a ** 2"),
    "tanh unsquared": ("tanh", "1 - tanh(a)"),
    "exp of input": ("exp", "the input a"),
}


def _graph(leaf_values: Sequence[float], steps: Sequence[Step], wrong: str = "") -> tuple[list, list, list, list, list]:
    """The graph the exercise's `Value` builds: data, operation, operands, local derivatives; each step's node.

    It follows the exercise's given operations exactly: a - b is a + (b * -1), a / b is a * b ** -1,
    c + a is a + c, a number is wrapped in a Value of its own, and operands keep their order.
    `wrong` names one of WRONG_DERIVATIVES to build in.
    """
    data, kind, operands, local = [], [], [], []

    def new(value: float, parents: tuple = (), derivatives: tuple = (), op: str = "") -> int:
        data.append(value)
        kind.append(op)
        operands.append(parents)
        local.append(derivatives)
        return len(data) - 1

    def add(i: int, j: int) -> int:
        return new(data[i] + data[j], (i, j), (1.0, 1.0), "add")

    def mul(i: int, j: int) -> int:
        derivatives = (data[i], data[j]) if wrong == "mul own" else (data[j], data[i])
        return new(data[i] * data[j], (i, j), derivatives, "mul")

    def power(i: int, c: float) -> int:
        a = data[i]
        derivative = {"pow without c": a ** (c - 1), "pow with exponent c": c * a**c}.get(wrong, c * a ** (c - 1))
        return new(a**c, (i,), (derivative,), "pow")

    def neg(i: int) -> int:
        return mul(i, new(-1.0))

    node = [new(float(v)) for v in leaf_values]
    for op, *args in steps:
        a, b = (node[p] if isinstance(p, int) else float(p) for p in (*args, 0.0)[:2])
        a_is_node, b_is_node = isinstance(args[0], int), len(args) > 1 and isinstance(args[1], int)
        if op in ("add", "mul"):
            combine = add if op == "add" else mul
            if not a_is_node:  # c + v runs v.__radd__(c), which is v + c; the same for *
                a, b, b_is_node = b, a, False
            result = combine(a, b if b_is_node else new(b))
        elif op == "sub":
            if not a_is_node:  # c - v runs v.__rsub__(c), which is (-v) + c
                result = add(neg(b), new(a))
            else:
                result = add(a, neg(b) if b_is_node else new(-b))
        elif op == "div":
            if not a_is_node:  # c / v runs v.__rtruediv__(c), which is (v ** -1) * c
                result = mul(power(b, -1.0), new(a))
            else:
                result = mul(a, power(b, -1.0) if b_is_node else new(b**-1))
        elif op == "pow":
            result = power(a, b)
        elif op == "neg":
            result = neg(a)
        elif op == "relu":
            out = max(data[a], 0.0)
            result = new(out, (a,), (out if wrong == "relu output" else float(data[a] > 0),), "relu")
        elif op == "tanh":
            t = math.tanh(data[a])
            derivative = {"tanh of input": 1 - data[a] ** 2, "tanh unsquared": 1 - t}.get(wrong, 1 - t * t)
            result = new(t, (a,), (derivative,), "tanh")
        else:
            e = math.exp(data[a])
            result = new(e, (a,), (data[a] if wrong == "exp of input" else e,), "exp")
        node.append(result)
    return data, kind, operands, local, node


def emulate(
    leaf_values: Sequence[float],
    steps: Sequence[Step],
    *,
    accumulate: bool = True,
    chain: bool = True,
    unchained: tuple[str, ...] = (),
    recursive: bool = False,
    reverse_operands: bool = False,
    wrong: str = "",
) -> list[float]:
    """The leaf gradients that the exercise's engine gets, right or with one mistake built in.

    accumulate=False: `self.grad = ...` instead of `+=`. chain=False: local derivatives not multiplied
    by out.grad (`unchained`: only in these operations, e.g. ("tanh",)). recursive=True: each node runs
    its _backward and then recurses into its operands, with no topological sort. reverse_operands:
    operands visited last one first. wrong: one of WRONG_DERIVATIVES.
    """
    data, kind, operands, local, node = _graph(leaf_values, steps, wrong)
    grad = [0.0] * len(data)

    def backward_one(n: int) -> None:
        for parent, derivative in zip(operands[n], local[n]):
            contribution = derivative * grad[n] if chain and kind[n] not in unchained else derivative
            grad[parent] = grad[parent] + contribution if accumulate else contribution

    def parents(n: int) -> tuple:
        return operands[n][::-1] if reverse_operands else operands[n]

    root = node[-1]
    grad[root] = 1.0
    if recursive:

        def walk(n: int) -> None:
            backward_one(n)
            for parent in parents(n):
                walk(parent)

        walk(root)
    else:
        order, seen = [], set()

        def visit(n: int) -> None:
            if n not in seen:
                seen.add(n)
                for parent in parents(n):
                    visit(parent)
                order.append(n)

        visit(root)
        for n in reversed(order):
            backward_one(n)
    return [grad[node[i]] for i in range(len(leaf_values))]


_CORE = ("add", "mul", "pow", "relu", "tanh", "exp")


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-7, abs_tol=1e-7)


def _diagnose(grads: list[float], leaf_values: Sequence[float], steps: Sequence[Step], names: list[str]) -> str:
    """The likely mistake: the first model of a mistaken engine whose gradients are the ones that came."""
    shared = reused(steps)
    what = " and ".join(f"`{names[p]}`" for p in shared) or "a node"
    is_ = "is" if len(shared) <= 1 else "are"

    def gets(**flags) -> bool:
        return all(_close(g, e) for g, e in zip(grads, emulate(leaf_values, steps, **flags)))

    for mistake, flags in [("overwrite", {"accumulate": False}), ("recursive", {"recursive": True})]:
        if gets(**flags) or gets(**flags, reverse_operands=True):
            return CAUSES[mistake].format(shared=what, is_=is_)
    unchained = [op for op in _CORE if gets(unchained=(op,))]  # several when the expression cannot tell them apart
    if unchained or gets(chain=False):
        where = f"the _backward of {' or '.join(unchained)}" if unchained else "a _backward"
        return CAUSES["no chain"].format(where=where)
    wrong = [WRONG_DERIVATIVES[w][0] for w in WRONG_DERIVATIVES if gets(wrong=w)]
    if wrong:
        return f"the local derivative of {wrong[0]} is wrong: {RULES[wrong[0]]}"
    if len(steps) == 1:
        return RULES[steps[0][0]]
    return CAUSES["shared" if shared else "other"].format(shared=what, is_=is_)


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
    if not _close(value, expected["value"]):
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
        if not _close(g, e):
            raise AssertionError(
                f"The gradient for `{names[i]}` is wrong: got {g:.6g}, expected {e:.6g}.\n"
                f"  in: {code}; y.backward()\n"
                f"  likely cause: {_diagnose(grads, leaf_values, steps, names)}"
            )


def check_engine(
    value_class: Callable[[float], object],
    leaf_values: Sequence[float],
    steps: Sequence[Step],
    leaf_names: Sequence[str] | None = None,
) -> None:
    """Run the expression on `value_class`, call backward(), and assert it all matches torch.autograd."""
    assert_engine_matches(run_engine(value_class, leaf_values, steps), leaf_values, steps, leaf_names)
