"""utils.expressions and utils.engine_mistakes: expressions as data, run on a scalar engine and checked against
torch.autograd, with the likely mistake named.

A small engine, written the way exercise 06 asks, passes on every kind of expression; each familiar
mistake, built into a copy of it, fails with a message that names that mistake.
"""

import math
import sys

import pytest
import torch

from utils.engine_mistakes import emulate
from utils.expressions import (
    assert_engine_matches,
    assert_order_valid,
    assert_zero_grad,
    chain,
    check_engine,
    check_topological_order,
    check_zero_grad,
    describe,
    evaluate,
    is_safe,
    random_expression,
    reference,
    reused,
    run_engine,
    run_order,
    run_zero_grad,
)

LIMIT_BEFORE = sys.getrecursionlimit()


class Value:
    """A right engine, as exercise 06 asks for it (with type(self), so the mistakes below can subclass it)."""

    def __init__(self, data, parents=(), op=""):
        self.data = float(data)
        self.grad = 0.0
        self._backward = lambda: None
        self._parents = tuple(parents)
        self._op = op

    def __add__(self, other):
        other = other if isinstance(other, Value) else type(self)(other)
        out = type(self)(self.data + other.data, (self, other), "+")

        def _backward():
            self.grad += out.grad
            other.grad += out.grad

        out._backward = _backward
        return out

    def __mul__(self, other):
        other = other if isinstance(other, Value) else type(self)(other)
        out = type(self)(self.data * other.data, (self, other), "*")

        def _backward():
            self.grad += other.data * out.grad
            other.grad += self.data * out.grad

        out._backward = _backward
        return out

    def __pow__(self, exponent):
        out = type(self)(self.data**exponent, (self,), f"**{exponent}")

        def _backward():
            self.grad += exponent * self.data ** (exponent - 1) * out.grad

        out._backward = _backward
        return out

    def relu(self):
        out = type(self)(max(self.data, 0.0), (self,), "relu")

        def _backward():
            self.grad += (out.data > 0) * out.grad

        out._backward = _backward
        return out

    def tanh(self):
        out = type(self)(math.tanh(self.data), (self,), "tanh")

        def _backward():
            self.grad += (1 - out.data**2) * out.grad

        out._backward = _backward
        return out

    def exp(self):
        out = type(self)(math.exp(self.data), (self,), "exp")

        def _backward():
            self.grad += out.data * out.grad

        out._backward = _backward
        return out

    def log(self):
        out = type(self)(math.log(self.data), (self,), "log")

        def _backward():
            self.grad += out.grad / self.data

        out._backward = _backward
        return out

    def sigmoid(self):
        out = type(self)(1 / (1 + math.exp(-self.data)), (self,), "sigmoid")

        def _backward():
            self.grad += out.data * (1 - out.data) * out.grad

        out._backward = _backward
        return out

    def topological_order(self):
        order, seen, stack = [], {self}, [(self, iter(self._parents))]
        while stack:
            node, parents = stack[-1]
            parent = next((p for p in parents if p not in seen), None)
            if parent is None:
                stack.pop()
                order.append(node)  # after all of its parents
            else:
                seen.add(parent)
                stack.append((parent, iter(parent._parents)))
        return order

    def zero_grad(self):
        for v in self.topological_order():
            v.grad = 0.0

    def backward(self):
        self.grad = 1.0
        for v in reversed(self.topological_order()):
            v._backward()

    def __neg__(self):
        return self * -1

    def __radd__(self, other):
        return self + other

    def __sub__(self, other):
        return self + (-other)

    def __rsub__(self, other):
        return other + (-self)

    def __rmul__(self, other):
        return self * other

    def __truediv__(self, other):
        return self * other**-1

    def __rtruediv__(self, other):
        return other * self**-1


class Overwrites(Value):
    """`self.grad = ...` instead of `+=` in __add__, __mul__ and __pow__."""

    def __add__(self, other):
        other = other if isinstance(other, Value) else type(self)(other)
        out = type(self)(self.data + other.data, (self, other), "+")

        def _backward():
            self.grad = out.grad
            other.grad = out.grad

        out._backward = _backward
        return out

    def __mul__(self, other):
        other = other if isinstance(other, Value) else type(self)(other)
        out = type(self)(self.data * other.data, (self, other), "*")

        def _backward():
            self.grad = other.data * out.grad
            other.grad = self.data * out.grad

        out._backward = _backward
        return out

    def __pow__(self, exponent):
        out = type(self)(self.data**exponent, (self,), f"**{exponent}")

        def _backward():
            self.grad = exponent * self.data ** (exponent - 1) * out.grad

        out._backward = _backward
        return out


class Recursive(Value):
    """backward() recurses from each node into its parents, with no topological sort."""

    def backward(self):
        self.grad = 1.0

        def walk(v):
            v._backward()
            for parent in v._parents:
                walk(parent)

        walk(self)


class NoChain(Value):
    """tanh's and **'s _backward forget to multiply by out.grad (the others keep it)."""

    def tanh(self):
        out = super().tanh()
        out._backward = lambda: setattr(self, "grad", self.grad + (1 - out.data**2))
        return out

    def __pow__(self, exponent):
        out = super().__pow__(exponent)
        out._backward = lambda: setattr(self, "grad", self.grad + exponent * self.data ** (exponent - 1))
        return out


class TanhOfInput(Value):
    """tanh's derivative computed from the input: 1 - x**2."""

    def tanh(self):
        out = super().tanh()
        out._backward = lambda: setattr(self, "grad", self.grad + (1 - self.data**2) * out.grad)
        return out


LECTURE = ([1.0, 2.0], [("mul", 0, 1), ("pow", 2, 2.0), ("pow", 2, 3.0), ("add", 3, 4)])  # (w*x)**2 + (w*x)**3


def failure(engine, leaf_values, steps, leaf_names=None):
    with pytest.raises(AssertionError) as info:
        check_engine(engine, leaf_values, steps, leaf_names)
    return str(info.value)


def test_lecture_case_and_its_code():
    leaf_values, steps = LECTURE
    assert reference(leaf_values, steps) == {"value": 12.0, "grads": [32.0, 16.0]}
    code = describe(leaf_values, steps, ["w", "x"])
    assert code == "w = Value(1); x = Value(2); v2 = w * x; v3 = v2 ** 2; v4 = v2 ** 3; y = v3 + v4"
    scope = {"Value": Value}
    exec(code + "; y.backward()", scope)  # the description is code a student can run
    assert (scope["y"].data, scope["w"].grad, scope["x"].grad) == (12.0, 32.0, 16.0)


def test_evaluate_runs_the_same_steps_on_values_and_tensors():
    steps = [("sub", 1.5, 0), ("div", 2, 1), ("mul", -2.0, 3), ("neg", 4), ("relu", 5), ("tanh", 0), ("exp", 7)]
    values = evaluate(steps, [Value(0.3), Value(-1.2)])
    tensors = evaluate(steps, [torch.tensor(0.3, dtype=torch.float64), torch.tensor(-1.2, dtype=torch.float64)])
    assert [v.data for v in values] == pytest.approx([t.item() for t in tensors], rel=1e-12)


@pytest.mark.parametrize("shared", [False, True])
def test_random_expressions_are_reproducible_safe_and_use_every_leaf(shared):
    for seed in range(20):
        a = random_expression(torch.Generator().manual_seed(seed), num_leaves=3, num_steps=5, shared=shared)
        b = random_expression(torch.Generator().manual_seed(seed), num_leaves=3, num_steps=5, shared=shared)
        assert a == b
        leaf_values, steps = a
        assert len(steps) >= 5 and bool(reused(steps)) == shared
        used = {p for _, *args in steps for p in args if isinstance(p, int)}
        assert set(range(len(leaf_values) + len(steps) - 1)) <= used  # every node but y feeds a step
        assert all(v == round(v, 2) for v in leaf_values)  # short, so the printed code is exact


@pytest.mark.parametrize("shared", [False, True])
def test_the_model_engine_and_a_right_engine_agree_with_torch(shared):
    gen = torch.Generator().manual_seed(1)
    for trial in range(40):
        leaf_values, steps = random_expression(gen, num_leaves=1 + trial % 4, num_steps=2 + trial % 7, shared=shared)
        expected = reference(leaf_values, steps)["grads"]
        assert emulate(leaf_values, steps) == pytest.approx(expected, rel=1e-9, abs=1e-12)
        check_engine(Value, leaf_values, steps)


def test_overwritten_gradients_are_named():
    message = failure(Overwrites, [0.7], [("add", 0, 0)])  # x + x: 1 instead of 2
    assert "gradient for `x0` is wrong: got 1, expected 2" in message
    assert "overwritten instead of accumulated" in message and "`x0` is used more than once" in message
    message = failure(Overwrites, *LECTURE, ["w", "x"])
    assert "got 8, expected 32" in message and "`v2` is used more than once" in message and "+=" in message


def test_recursion_without_topological_order_is_named():
    check_engine(Recursive, [0.7], [("mul", 0, 0)])  # a leaf used twice is fine
    message = failure(Recursive, *LECTURE, ["w", "x"])
    assert "got 40, expected 32" in message and "without a topological order" in message


def test_missing_chain_factor_is_named():
    check_engine(NoChain, [0.7], [("tanh", 0)])  # out.grad is 1 here
    message = failure(NoChain, [0.7, 1.3], [("div", 0, 1)])
    assert "gradient for `x1` is wrong" in message and "out.grad" in message and "chain factor" in message
    message = failure(NoChain, [0.4, -0.3], [("mul", 0, 1), ("tanh", 2), ("mul", 3, 2.0)])
    assert "the _backward of tanh leaves out the chain factor" in message


class ReluOfOutput(Value):
    """relu's derivative taken as its output."""

    def relu(self):
        out = super().relu()
        out._backward = lambda: setattr(self, "grad", self.grad + out.data * out.grad)
        return out


class PowWithoutC(Value):
    """a ** c differentiated as a ** (c - 1)."""

    def __pow__(self, exponent):
        out = super().__pow__(exponent)
        out._backward = lambda: setattr(self, "grad", self.grad + self.data ** (exponent - 1) * out.grad)
        return out


class OddDerivative(Value):
    """exp's derivative off by a factor no model knows."""

    def exp(self):
        out = super().exp()
        out._backward = lambda: setattr(self, "grad", self.grad + 1.1 * out.data * out.grad)
        return out


COMPOSITE = ([0.4, -0.3], [("mul", 0, 1), ("tanh", 2), ("mul", 3, 2.0), ("pow", 4, 2.0), ("exp", 5), ("relu", 6)])


def test_a_wrong_local_derivative_gets_its_rule():
    message = failure(TanhOfInput, [0.7], [("tanh", 0)])
    assert "1 - tanh(a) ** 2" in message and "not the input" in message
    for engine, op in [(TanhOfInput, "tanh"), (ReluOfOutput, "relu"), (PowWithoutC, "pow")]:
        message = failure(engine, *COMPOSITE)  # among several operations, the wrong one is named
        assert f"likely cause: the local derivative of {op} is wrong" in message, message
    message = failure(OddDerivative, *COMPOSITE)
    assert "likely cause: check each operation's local derivative" in message


class TanhWithoutChain(Value):
    """tanh's _backward forgets out.grad; the other operations keep it."""

    def tanh(self):
        out = super().tanh()
        out._backward = lambda: setattr(self, "grad", self.grad + (1 - out.data**2))
        return out


def test_operations_the_expression_cannot_tell_apart_are_both_named():
    # tanh's output reaches y only through v4 = v3 + 1.5: leaving out.grad out of either gives the same
    message = failure(TanhWithoutChain, [0.3, 0.2], [("mul", 0, 1), ("tanh", 2), ("add", 3, 1.5), ("mul", 0, 4)])
    assert "likely cause: the _backward of add or tanh leaves out the chain factor" in message


def test_a_shared_node_mistake_the_model_does_not_know_is_still_pointed_at():
    leaf_values, steps = LECTURE
    got = run_engine(Value, leaf_values, steps)
    got["grads"][0] += 1.0
    with pytest.raises(AssertionError, match="local derivative .* `v2` is used more than once, so its gradient must"):
        assert_engine_matches(got, leaf_values, steps)


def test_wrong_values_and_malformed_answers():
    with pytest.raises(AssertionError, match="value of `y` is wrong: got 5, expected 4"):
        assert_engine_matches({"value": 5.0, "grads": [4.0]}, [2.0], [("pow", 0, 2.0)])
    with pytest.raises(AssertionError, match="one gradient per leaf"):
        assert_engine_matches({"value": 4.0, "grads": []}, [2.0], [("pow", 0, 2.0)])
    with pytest.raises(AssertionError, match="should be a tensor"):
        assert_engine_matches({"value": "4", "grads": [4.0]}, [2.0], [("pow", 0, 2.0)])
    with pytest.raises(AssertionError, match="should be"):
        assert_engine_matches([4.0, [4.0]], [2.0], [("pow", 0, 2.0)])


class ReluAtKink(Value):
    """relu's derivative taken as 1 at the kink (>= instead of >)."""

    def relu(self):
        out = super().relu()
        out._backward = lambda: setattr(self, "grad", self.grad + (self.data >= 0) * out.grad)
        return out


class SigmoidOfInput(Value):
    """sigmoid's derivative computed from the input: a * (1 - a)."""

    def sigmoid(self):
        out = super().sigmoid()
        out._backward = lambda: setattr(self, "grad", self.grad + self.data * (1 - self.data) * out.grad)
        return out


class LogAsExp(Value):
    """log's derivative taken as its output, as for exp."""

    def log(self):
        out = super().log()
        out._backward = lambda: setattr(self, "grad", self.grad + out.data * out.grad)
        return out


def test_log_sigmoid_and_the_relu_kink_are_checked_and_their_mistakes_named():
    check_engine(Value, [0.0], [("relu", 0)])  # derivative 0 at the kink, as torch
    message = failure(ReluAtKink, [0.0], [("relu", 0)])
    assert "got 1, expected 0" in message and "0 at the kink a = 0, as in PyTorch" in message
    composite = ([0.4, -0.3], [("mul", 0, 1), ("sigmoid", 2), ("log", 3), ("mul", 4, -2.0), ("tanh", 5)])
    check_engine(Value, *composite)
    for engine, op in [(SigmoidOfInput, "sigmoid"), (LogAsExp, "log")]:
        assert f"likely cause: the local derivative of {op} is wrong" in failure(engine, *composite)


def test_chain_is_as_deep_as_it_is_long_and_is_described_briefly():
    leaf_values, steps = chain(5)
    assert leaf_values == [0.5] and steps == [("mul", 0, 0.999), ("add", 1, 0.001), ("mul", 2, 0.999), ("add", 3, 0.001), ("mul", 4, 0.999)]
    assert reference(*chain(4000))["grads"][0] == pytest.approx(0.999**2000)
    text = describe(*chain(5000))
    assert text.startswith("x0 = Value(0.5); v1 = x0 * 0.999; v2 = v1 + 0.001;") and text.endswith("v4999 = v4998 * 0.999; y = v4999 + 0.001")
    assert "(4,992 more steps like these)" in text and len(text) < 400


class RecursiveOrder(Value):
    """topological_order by a recursive depth-first search, as lecture 07 writes it."""

    def topological_order(self):
        order, seen = [], set()

        def visit(v):
            if v not in seen:
                seen.add(v)
                for parent in v._parents:
                    visit(parent)
                order.append(v)

        visit(self)
        return order


class BreadthFirst(Value):
    """The Values in the order a breadth-first walk from y meets them, reversed: not topological."""

    def topological_order(self):
        order, seen, queue = [], {self}, [self]
        while queue:
            node = queue.pop(0)
            order.append(node)
            for parent in node._parents:
                if parent not in seen:
                    seen.add(parent)
                    queue.append(parent)
        return order[::-1]


class NoSeen(Value):
    """An iterative walk that forgets which Values it visited: a shared one comes twice."""

    def topological_order(self):
        order, stack = [], [(self, False)]
        while stack:
            node, done = stack.pop()
            if done:
                order.append(node)
            else:
                stack.append((node, True))
                stack.extend((p, False) for p in node._parents)
        return order


class LeavesLeftOut(Value):
    def topological_order(self):
        return [v for v in super().topological_order() if v._parents]


class RaisesTheLimit(Value):
    def topological_order(self):
        import sys

        sys.setrecursionlimit(100_000)
        return RecursiveOrder.topological_order(self)


class UsesTorch(Value):
    def tanh(self):
        out = type(self)(torch.tanh(torch.tensor(self.data)).item(), (self,), "tanh")
        out._backward = lambda: setattr(self, "grad", self.grad + (1 - out.data**2) * out.grad)
        return out


def order_failure(engine, leaf_values, steps):
    with pytest.raises(AssertionError) as info:
        check_topological_order(engine, leaf_values, steps)
    return str(info.value)


def test_a_right_order_passes_on_random_graphs_and_deep_chains():
    gen = torch.Generator().manual_seed(3)
    for trial in range(20):
        check_topological_order(Value, *random_expression(gen, num_leaves=1 + trial % 3, num_steps=2 + trial % 7))
    check_topological_order(Value, *chain(5000))
    check_engine(Value, *chain(5000))
    got = run_order(Value, *LECTURE)
    assert got["order"].tolist()[-1] == 0 and len(got["order"]) == len(got["parents"]) == 6  # w, x, v2, v3, v4, y


def test_a_recursive_sort_or_backward_fails_on_a_deep_chain_with_what_to_do():
    check_topological_order(RecursiveOrder, *chain(200))  # shallow: fine
    with pytest.raises(RecursionError, match="topological_order\\(\\) went too deep in recursion.*a loop instead.*a list used as a stack"):
        check_topological_order(RecursiveOrder, *chain(5000))
    with pytest.raises(RecursionError, match="backward\\(\\) went too deep"):
        check_engine(Recursive, *chain(5000))
    with pytest.raises(AssertionError, match="changed Python's recursion limit"):
        check_topological_order(RaisesTheLimit, *chain(5000))
    assert sys.getrecursionlimit() == LIMIT_BEFORE  # put back as it was


def test_each_way_an_order_goes_wrong_is_named():
    # y = x0 + tanh(2 * x0): a walk outwards from y meets x0 before v1 = 2 * x0, which is computed from it
    message = order_failure(BreadthFirst, [0.3], [("mul", 0, 2.0), ("tanh", 1), ("add", 0, 2)])
    assert "`v1` comes before `x0`, which it was computed from" in message
    leaf_values, steps = LECTURE  # v2 = w * x is used twice
    assert "appears 2 times in the order" in order_failure(NoSeen, leaf_values, steps)
    message = order_failure(LeavesLeftOut, leaf_values, steps)
    assert "leaves out 2 of the 6 Values y depends on, among them `x" in message
    assert "order = y.topological_order()" in message  # with the code to rerun
    no_list = run_order(Value, leaf_values, steps) | {"order": None}
    with pytest.raises(AssertionError, match="should return a list of Values"):
        assert_order_valid(no_list, leaf_values, steps)
    strays = run_order(Value, leaf_values, steps)
    strays["order"] = torch.cat([torch.tensor([-1]), strays["order"]])
    with pytest.raises(AssertionError, match="1 thing\\(s\\) that are not Values of y's graph"):
        assert_order_valid(strays, leaf_values, steps)
    reversed_order = run_order(Value, leaf_values, steps)
    reversed_order["order"] = reversed_order["order"].flip(0)
    with pytest.raises(AssertionError, match="should end with y"):
        assert_order_valid(reversed_order, leaf_values, steps)


def test_the_engine_may_not_use_torch():
    with pytest.raises(AssertionError, match="UsesTorch called torch.tensor: .*without torch"):
        check_engine(UsesTorch, [0.5], [("tanh", 0)])


class ZeroesOnlyItself(Value):
    def zero_grad(self):
        self.grad = 0.0


class ZeroesOnlyLeaves(Value):
    def zero_grad(self):
        for v in self.topological_order():
            if not v._parents:
                v.grad = 0.0


def test_zero_grad_resets_every_grad_and_its_mistakes_are_named():
    check_zero_grad(Value, *LECTURE, ["w", "x"])
    check_zero_grad(Overwrites, *LECTURE)  # a wrong backward is test_shared's business, not zero_grad's
    with pytest.raises(AssertionError, match="still hold a grad other than 0, among them `w`"):
        check_zero_grad(ZeroesOnlyItself, *LECTURE, ["w", "x"])
    with pytest.raises(AssertionError, match="4 of the 6 Values y depends on still hold a grad other than 0, among them `y`"):
        check_zero_grad(ZeroesOnlyLeaves, *LECTURE)
    got = run_zero_grad(Value, *LECTURE)
    got["second"] = [2 * g for g in got["second"]]
    with pytest.raises(AssertionError, match="a second y.backward\\(\\) gave `x0` the grad 64, where the first gave 32"):
        assert_zero_grad(got, *LECTURE)


def test_random_expressions_stay_inside_each_operations_domain():
    assert not is_safe([0.1], [("log", 0)]) and not is_safe([-1.0], [("log", 0)]) and is_safe([2.0], [("log", 0)])
    assert not is_safe([-40.0], [("sigmoid", 0)]) and is_safe([-1.5], [("sigmoid", 0)])  # math.exp(40) is fine, but flat
    assert not is_safe([0.01], [("relu", 0)]) and not is_safe([5.0], [("exp", 0)])
