"""A model of exercise 06's engine with familiar mistakes built in, to name the mistake behind wrong gradients.

`emulate` replays an expression (as `utils.expressions` writes it: leaf values and steps) on the graph that
the exercise's `Value` builds, right or with one mistake: gradients overwritten instead of accumulated, a
recursive walk without a topological order, a local derivative not multiplied by out.grad, or one of
WRONG_DERIVATIVES. `diagnose` returns the first mistake whose gradients are the ones an engine gave,
in words a student can act on. Plain Python floats only; this module imports nothing of the course's.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

Step = tuple  # (operation, operand, ...): an operand is a node index (int) or a constant (float)

RULES = {  # each operation's local derivative, as a student should write it
    "add": "d(a + b)/da = d(a + b)/db = 1: both operands get out.grad unchanged.",
    "mul": "d(a * b)/da = b and d(a * b)/db = a: each operand gets the other one's data times out.grad.",
    "pow": "d(a ** c)/da = c * a ** (c - 1), times out.grad.",
    "relu": "relu'(a) = 1 where a > 0 and 0 where a <= 0 (0 at the kink a = 0, as in PyTorch), times out.grad.",
    "tanh": "d tanh(a)/da = 1 - tanh(a) ** 2: square the output (out.data), not the input, and multiply by out.grad.",
    "exp": "d exp(a)/da = exp(a), which is the output itself (out.data), times out.grad.",
    "log": "d log(a)/da = 1 / a, one over the input (self.data), not the output, times out.grad.",
    "sigmoid": "d sigmoid(a)/da = s * (1 - s) with s = sigmoid(a), the output (out.data) and not the input, times out.grad.",
    "sub": "a - b is built as a + (-b), and -b as b * -1: if + and * pass on their own, look at * with a number.",
    "div": "a / b is built as a * b ** -1: if * and ** pass on their own, every _backward must multiply by out.grad.",
    "neg": "-a is built as a * -1: look at __mul__ with a Python number (it must be wrapped in a Value).",
}
CAUSES = {  # the mistakes that diagnose names, in words
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
WRONG_DERIVATIVES = {  # familiar wrong local derivatives, as (operation, what was written)
    "mul own": ("mul", "each operand gets its own data"),
    "pow without c": ("pow", "a ** (c - 1)"),
    "pow with exponent c": ("pow", "c * a ** c"),
    "relu output": ("relu", "the output relu(a)"),
    "tanh of input": ("tanh", "1 - a ** 2"),
    "tanh unsquared": ("tanh", "1 - tanh(a)"),
    "exp of input": ("exp", "the input a"),
    "log as exp": ("log", "the output log(a)"),
    "log of output": ("log", "1 / log(a)"),
    "sigmoid of input": ("sigmoid", "a * (1 - a)"),
    "sigmoid output": ("sigmoid", "sigmoid(a)"),
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
        elif op == "log":
            out = math.log(data[a])
            derivative = {"log as exp": out, "log of output": 1 / out}.get(wrong, 1 / data[a])
            result = new(out, (a,), (derivative,), "log")
        elif op == "sigmoid":
            sig = 1 / (1 + math.exp(-data[a]))
            derivative = {"sigmoid of input": data[a] * (1 - data[a]), "sigmoid output": sig}.get(wrong, sig * (1 - sig))
            result = new(sig, (a,), (derivative,), "sigmoid")
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
    if recursive:  # walk(n): n's _backward, then walk(each operand): a stack replays it without recursion
        stack = [root]
        while stack:
            n = stack.pop()
            backward_one(n)
            stack.extend(reversed(parents(n)))
    else:  # operands are numbered before the nodes made from them: an order that is topological
        seen = {root}
        for n in range(root, -1, -1):
            if n in seen:
                backward_one(n)
                seen.update(operands[n])
    return [grad[node[i]] for i in range(len(leaf_values))]


_CORE = ("add", "mul", "pow", "relu", "tanh", "exp", "log", "sigmoid")


def close(a: float, b: float) -> bool:
    """Equal within the tolerance that tells a right gradient from a wrong one (1e-7, relative or absolute)."""
    return math.isclose(a, b, rel_tol=1e-7, abs_tol=1e-7)


def diagnose(
    grads: list[float], leaf_values: Sequence[float], steps: Sequence[Step], shared: Sequence[str]
) -> tuple[str, str]:
    """The likely mistake: the first model of a mistaken engine whose gradients are the ones that came, as its
    code (one of utils.diagnoses.DIAGNOSES) and in words.

    shared: the names of the nodes that more than one operation uses (for the message).
    """
    what = " and ".join(f"`{name}`" for name in shared) or "a node"
    is_ = "is" if len(shared) <= 1 else "are"

    def gets(**flags) -> bool:
        return all(close(g, e) for g, e in zip(grads, emulate(leaf_values, steps, **flags)))

    for mistake, flags in [("overwrite", {"accumulate": False}), ("recursive", {"recursive": True})]:
        if gets(**flags) or gets(**flags, reverse_operands=True):
            return f"engine-{mistake}", CAUSES[mistake].format(shared=what, is_=is_)  # engine-overwrite, engine-recursive
    unchained = [op for op in _CORE if gets(unchained=(op,))]  # several when the expression cannot tell them apart
    if unchained or gets(chain=False):
        where = f"the _backward of {' or '.join(unchained)}" if unchained else "a _backward"
        return "no-chain-factor", CAUSES["no chain"].format(where=where)
    wrong = [WRONG_DERIVATIVES[w][0] for w in WRONG_DERIVATIVES if gets(wrong=w)]
    if wrong:
        return f"engine-derivative-{wrong[0]}", f"the local derivative of {wrong[0]} is wrong: {RULES[wrong[0]]}"
    if len(steps) == 1:
        return f"engine-derivative-{steps[0][0]}", RULES[steps[0][0]]
    return ("engine-shared", CAUSES["shared"].format(shared=what, is_=is_)) if shared else ("engine-grads", CAUSES["other"])
