"""utils.checks: every check passes right answers silently and fails wrong ones with a message that teaches."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.autograd.forward_ad import dual_level, make_dual, unpack_dual

from utils.checks import (
    as_tensor,
    assert_accuracy,
    assert_grads_match,
    assert_values_match,
    forbid_autograd,
    forbid_calls,
    forbid_torch,
)


@pytest.fixture
def expected():
    return torch.randn(3, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))


def fails_with(actual, expected, *phrases, check=assert_grads_match, name="w"):
    with pytest.raises(AssertionError) as info:
        check(actual, expected, name)
    message = str(info.value)
    for phrase in phrases:
        assert phrase in message, f"{phrase!r} not in:\n{message}"
    return message


def test_right_answers_pass_silently(expected, capfd):
    assert_grads_match(expected.clone(), expected, "w")
    assert_grads_match(expected.float(), expected, "w")  # float32 gets float32 tolerances
    assert_grads_match(expected.numpy(), expected, "w")
    assert_values_match(3, 3.0, "a")
    assert_values_match([1.0, 2.0], torch.tensor([1.0, 2.0]), "a")
    out, err = capfd.readouterr()
    assert out == "" and err == "", "nbgrader scores a test cell that prints to stderr as 0"


def test_no_warning_reaches_stderr(capfd):
    # Comparing a tensor that requires grad would warn in some torch versions; nothing may leak.
    x = torch.tensor([1.0, 2.0], requires_grad=True)
    assert_grads_match(x * 1, torch.tensor([1.0, 2.0]), "x")
    assert capfd.readouterr().err == ""


@pytest.mark.parametrize("seed", range(20))
def test_random_right_gradients_pass(seed):
    gen = torch.Generator().manual_seed(seed)
    shape = torch.randint(1, 5, (torch.randint(0, 4, (1,), generator=gen).item(),), generator=gen).tolist()
    x = torch.randn(shape, dtype=torch.float64, generator=gen, requires_grad=True)
    (g,) = torch.autograd.grad((x.tanh() * x.exp()).sum(), x)
    manual = (1 - x.tanh() ** 2) * x.exp() + x.tanh() * x.exp()
    assert_grads_match(manual, g, "x")


def test_gradient_twice_the_expected_names_accumulation(expected):
    fails_with(2 * expected, expected, "gradient for `w`", "exactly 2x", "forget to zero the gradients")


def test_three_times_names_three_accumulations(expected):
    fails_with(3 * expected, expected, "exactly 3x")


def test_sign_flip(expected):
    fails_with(-expected, expected, "sign is flipped")


def test_half_names_missing_factor(expected):
    fails_with(expected / 2, expected, "exactly 1/2", "factor of 2 is missing")


def test_other_constant_factor(expected):
    fails_with(1.5 * expected, expected, "same factor (1.5)")


def test_none_gradient_names_the_graph():
    fails_with(None, torch.ones(2), "gradient for `w` is None", "not connected", "requires_grad=True")


def test_none_value_names_the_missing_return():
    fails_with(None, torch.ones(2), "forget to return", check=assert_values_match, name="a")


def test_all_zero_gradient(expected):
    fails_with(torch.zeros_like(expected), expected, "every entry is 0", "detach()")


def test_transposed_square_matrix():
    e = torch.tensor([[1.0, 2.0], [3.0, 4.0]], dtype=torch.float64)
    fails_with(e.T, e, "transpose of the expected value")


def test_transposed_shape(expected):
    fails_with(expected.T, expected, "shape (4, 3)", "shape (3, 4) was expected", "looks transposed")


def test_summed_over_batch(expected):
    fails_with(expected.sum(), expected, "one number came where a tensor was expected")


def test_forgot_to_sum_over_batch(expected):
    fails_with(expected[0], expected.sum(), "forget to sum over the batch")


def test_same_number_of_entries_wrong_shape(expected):
    fails_with(expected.reshape(2, 6), expected, "right number of entries in the wrong shape")


def test_integer_dtype():
    fails_with(torch.tensor([1, 2]), torch.tensor([1.0, 2.0]), "dtype torch.int64", "floating-point")


def test_nan(expected):
    bad = expected.clone()
    bad[1, 2] = float("nan")
    fails_with(bad, expected, "contains NaN")


def test_message_reports_worst_entry_and_relative_error(expected):
    bad = expected.clone()
    bad[2, 1] += 10.0
    message = fails_with(bad, expected, "1 of 12 entries differ", "worst entry [2, 1]", "relative error")
    assert "likely cause" not in message  # a single wrong entry has no familiar pattern


def test_tolerance_is_explicit(expected):
    near = expected + 1e-4
    fails_with(near, expected)
    assert_grads_match(near, expected, "w", atol=1e-3)


def test_object_with_custom_eq_is_refused(expected):
    class AlwaysEqual:
        def __eq__(self, other):
            return True

        def __float__(self):
            return 0.0

    fails_with(AlwaysEqual(), expected, "should be a tensor", "AlwaysEqual")
    fails_with([AlwaysEqual()], expected, "should be a tensor")


def test_tensor_subclass_cannot_fake_a_match(expected):
    class Liar(torch.Tensor):
        @classmethod
        def __torch_function__(cls, func, types, args=(), kwargs=None):
            if func in (torch.isclose, torch.allclose, torch.Tensor.__eq__, torch.Tensor.sub, torch.Tensor.__sub__):
                return True
            return super().__torch_function__(func, types, args, kwargs or {})

    fake = torch.zeros(3, 4, dtype=torch.float64).as_subclass(Liar)
    fails_with(fake, expected, "every entry is 0")
    assert type(as_tensor(fake, "w")) is torch.Tensor


def test_forbid_autograd_catches_backward_grad_and_func():
    x = torch.tensor(2.0, requires_grad=True)
    from torch.autograd import grad  # bound before the check starts: still caught

    attempts = [
        lambda: (x**2).backward(),
        lambda: grad(x**2, x),
        lambda: torch.func.grad(lambda t: t**2)(torch.tensor(2.0)),
        lambda: torch.autograd.functional.jacobian(lambda t: t**2, torch.tensor(2.0)),
    ]
    for attempt in attempts:
        with pytest.raises(AssertionError, match="called autograd"):
            with forbid_autograd("my_backward"):
                attempt()


def least_squares(w):
    X = torch.tensor([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]], dtype=torch.float64)
    y = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
    return 0.5 * ((X @ w - y) ** 2).sum()


def by_dual_tensors(w):
    """The gradient of least_squares from forward-mode dual tensors, one basis vector at a time."""
    with dual_level():  # bound before the check starts, like make_dual: still caught
        return torch.stack([unpack_dual(least_squares(make_dual(w, e))).tangent for e in torch.eye(2, dtype=w.dtype)])


FORWARD_MODE = {
    "jvp over basis vectors": lambda w: torch.stack(
        [torch.func.jvp(least_squares, (w,), (e,))[1] for e in torch.eye(2, dtype=w.dtype)]
    ),
    "jacfwd": lambda w: torch.func.jacfwd(least_squares)(w),
    "hessian": lambda w: torch.func.hessian(least_squares)(w) @ w,
    "jacobian forward-mode": lambda w: torch.autograd.functional.jacobian(
        least_squares, w, strategy="forward-mode", vectorize=True
    ),
    "make_dual in dual_level": by_dual_tensors,
}


@pytest.mark.parametrize("attempt", list(FORWARD_MODE))
def test_forbid_autograd_catches_forward_mode(attempt):
    w = torch.tensor([1.0, 1.0], dtype=torch.float64)
    expected = torch.tensor([-1.0, -1.0], dtype=torch.float64)
    if attempt != "hessian":
        assert torch.allclose(FORWARD_MODE[attempt](w), expected)  # each one computes the gradient
    with pytest.raises(AssertionError, match="called autograd \\(forward mode"):
        with forbid_autograd("least_squares_grad"):
            FORWARD_MODE[attempt](w)


def test_forbid_autograd_catches_a_swallowed_forward_mode_call():
    with pytest.raises(AssertionError, match="derived by hand"):
        with forbid_autograd("least_squares_grad"):
            try:
                torch.func.jacfwd(least_squares)(torch.ones(2, dtype=torch.float64))
            except AssertionError:
                pass


def test_forbid_autograd_catches_a_swallowed_call():
    x = torch.tensor(2.0, requires_grad=True)
    with pytest.raises(AssertionError, match="derived by hand"):
        with forbid_autograd("my_backward"):
            try:
                (x**2).backward()
            except Exception:
                pass


def test_forbid_autograd_allows_plain_arithmetic_and_restores_autograd():
    X = torch.tensor([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]], dtype=torch.float64)
    y = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
    with forbid_autograd("my_backward"):
        product = torch.tensor(3.0) * 2
        grad = X.T @ (X @ torch.ones(2, dtype=torch.float64) - y)  # a gradient derived by hand
        detached = torch.ones(2, requires_grad=True).detach().exp()  # tensors that require grad may be used
    assert product.item() == 6.0 and grad.tolist() == [-1.0, -1.0] and detached.shape == (2,)
    x = torch.tensor(2.0, requires_grad=True)
    (x**3).backward()
    assert x.grad.item() == 12.0
    assert torch.func.jvp(least_squares, (torch.ones(2, dtype=torch.float64),), (torch.ones(2, dtype=torch.float64),))[1] == -2


class StableLogSumExp(torch.autograd.Function):
    """The max-shift log-sum-exp with its softmax written out: what exercise 05 asks for."""

    @staticmethod
    def forward(x):
        m = x.max(dim=-1, keepdim=True).values
        return m.squeeze(-1) + (x - m).exp().sum(dim=-1).log()

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(inputs[0], output)

    @staticmethod
    def backward(ctx, grad_output):
        x, out = ctx.saved_tensors
        return grad_output.unsqueeze(-1) * (x - out.unsqueeze(-1)).exp()


class SoftmaxInBackward(StableLogSumExp):
    """A right forward pass whose backward pass uses torch.softmax."""

    @staticmethod
    def backward(ctx, grad_output):
        x, _ = ctx.saved_tensors
        return grad_output.unsqueeze(-1) * torch.softmax(x, dim=-1)


FORBIDDEN = ["logsumexp", "softmax", "log_softmax"]
CALLS = {
    "torch.logsumexp": lambda x: torch.logsumexp(x, dim=-1),
    "Tensor.logsumexp": lambda x: x.logsumexp(-1),
    "torch.special.logsumexp": lambda x: torch.special.logsumexp(x, -1),
    "Tensor.softmax": lambda x: x.softmax(-1),
    "F.log_softmax": lambda x: F.log_softmax(x, dim=-1),
    "nn.Softmax": lambda x: torch.nn.Softmax(dim=-1)(x),
    "F.cross_entropy": lambda x: F.cross_entropy(x, torch.tensor([0, 1])),
    "softmax in a backward pass": lambda x: torch.autograd.grad(SoftmaxInBackward.apply(x).sum(), x),
}


@pytest.mark.parametrize("call", list(CALLS))
def test_forbid_calls_catches_each_way_to_reach_a_function(call):
    x = torch.randn(2, 3, dtype=torch.float64, requires_grad=True)
    with pytest.raises(AssertionError, match="LogSumExp used torch's (logsumexp|softmax|log_softmax) .*write yourself"):
        with forbid_calls("LogSumExp", FORBIDDEN):
            CALLS[call](x)


def test_forbid_calls_allows_the_elementary_version_and_checks_of_it():
    x = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    with forbid_calls("LogSumExp", FORBIDDEN):
        y = StableLogSumExp.apply(x)
        (grad,) = torch.autograd.grad(y.sum(), x, create_graph=True)
        assert torch.autograd.gradcheck(StableLogSumExp.apply, (x,))
        assert torch.autograd.gradgradcheck(StableLogSumExp.apply, (x,))
        hessian = torch.autograd.functional.hessian(lambda t: StableLogSumExp.apply(t), x.detach()[0])
    assert torch.allclose(y, torch.logsumexp(x, dim=-1)) and torch.allclose(grad, torch.softmax(x, dim=-1))
    s = torch.softmax(x.detach()[0], dim=-1)
    assert torch.allclose(hessian, torch.diag(s) - torch.outer(s, s))


def test_forbid_calls_catches_a_swallowed_call_and_restores_torch():
    x = torch.randn(2, 3, dtype=torch.float64)
    with pytest.raises(AssertionError, match="used torch's softmax"):
        with forbid_calls("cross_entropy", FORBIDDEN):
            try:
                torch.softmax(x, dim=-1)
            except AssertionError:
                pass
    assert torch.allclose(torch.softmax(x, dim=-1).sum(dim=-1), torch.ones(2, dtype=torch.float64))


@pytest.mark.parametrize(
    "call",
    [
        lambda: torch.tensor(0.5).tanh().item(),
        lambda: float(torch.sigmoid(torch.ones(()))),
        lambda: math.log(torch.ones(()).exp()),
    ],
    ids=["torch.tensor", "torch.sigmoid", "a tensor method"],
)
def test_forbid_torch_catches_any_torch_call(call):
    with pytest.raises(AssertionError, match="Value called torch\\.(tensor|ones): .*without torch"):
        with forbid_torch("Value"):
            call()


def test_forbid_torch_allows_floats_and_math_and_catches_a_swallowed_call():
    with forbid_torch("Value"):
        y = math.tanh(0.5) * 2.0 + math.exp(-1.0)
    assert y == pytest.approx(2 * math.tanh(0.5) + math.exp(-1.0))
    with pytest.raises(AssertionError, match="Value called torch.zeros"):
        with forbid_torch("Value"):
            try:
                torch.zeros(())
            except AssertionError:
                pass
    assert torch.zeros(()).item() == 0.0  # torch works again after the block


def test_a_list_of_numbers_or_of_0d_tensors_is_a_vector():
    expected = torch.tensor([0.5, 0.345], dtype=torch.float64)
    assert_values_match([0.5, 0.345], expected, "losses")
    assert_values_match([torch.tensor(0.5, dtype=torch.float64), torch.tensor(0.345, dtype=torch.float64)], expected, "losses")
    assert_values_match((torch.tensor(0.5), 0.345), expected.float(), "losses")
    fails_with([torch.tensor(0.5), torch.tensor([0.345])], expected, "list of tensors of different shapes", check=assert_values_match)
    fails_with([1.0, 0.345], expected, "1 of 2 entries differ", check=assert_values_match)


def test_numpy_input_is_accepted_and_compared():
    fails_with(np.array([2.0, 4.0]), torch.tensor([1.0, 2.0]), "exactly 2x")


def test_swapped_zero_one_labels_are_named():
    fails_with(torch.tensor([1.0, 0.0, 1.0]), torch.tensor([0.0, 1.0, 0.0]), "classes are swapped", check=assert_values_match)


@pytest.fixture
def labels():
    return torch.randint(0, 2, (200,), generator=torch.Generator().manual_seed(0))


def accuracy_fails_with(predictions, labels, *phrases, at_least=90):
    return fails_with(predictions, labels, *phrases, check=lambda p, y, name: assert_accuracy(p, y, at_least, name), name="y_hat")


def test_accuracy_passes_silently(labels, capfd):
    y_hat = labels.clone()
    y_hat[:10] = 1 - y_hat[:10]  # 95% right
    assert_accuracy(y_hat, labels, 95)
    assert_accuracy(y_hat.bool(), labels, 90)
    assert_accuracy(y_hat.float(), labels, 90)
    out, err = capfd.readouterr()
    assert out == "" and err == ""


def test_accuracy_below_the_bar_reports_it(labels):
    y_hat = labels.clone()
    y_hat[:40] = 1 - y_hat[:40]  # 80% right
    accuracy_fails_with(y_hat, labels, "accuracy 80.00% (160 of 200 right), below the required 90%", "learned something")


def test_accuracy_swapped_classes(labels):
    accuracy_fails_with(1 - labels, labels, "accuracy 0.00%", "classes are swapped")


def test_accuracy_one_label_everywhere(labels):
    accuracy_fails_with(torch.zeros_like(labels), labels, "predicts 0 for every example", "optimizer.step()")


def test_accuracy_at_chance(labels):
    guess = torch.randint(0, 2, (200,), generator=torch.Generator().manual_seed(1))
    accuracy_fails_with(guess, labels, "about what guessing gives", "zero_grad(), backward() and step()")


def test_accuracy_wrong_shapes(labels):
    accuracy_fails_with(labels[:, None], labels, "shape (200, 1)", "drop the extra dimension")
    accuracy_fails_with(torch.randn(200, 2), labels, "shape (200, 2)", "argmax(dim=1)")
    accuracy_fails_with(labels[:100], labels, "shape (100,)", "one label per example")


def test_accuracy_scores_instead_of_labels(labels):
    accuracy_fails_with(torch.sigmoid(torch.randn(200)), labels, "should hold class labels", "probability > 0.5")


def test_accuracy_labels_that_do_not_exist(labels):
    accuracy_fails_with(2 * labels - 1, labels, "never occur among the true ones ([-1])")


def test_accuracy_none_and_objects_are_refused(labels):
    accuracy_fails_with(None, labels, "is None")
    accuracy_fails_with("0101", labels, "should be a tensor")
