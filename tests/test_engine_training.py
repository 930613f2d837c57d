"""utils.engine_training: gradient descent with a scalar engine on exercise 06's 2-2-1 network, against torch.

A right `train` (with the right engine of tests/test_expressions.py) passes; each familiar mistake in the training
loop fails with a message that names it.
"""

import math

import pytest
import torch
from test_expressions import Value

from utils.engine_training import PARAMETERS, assert_training_matches, check_training, descend, network_loss, run_training

X = [[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]]  # XOR
y = [0.0, 1.0, 1.0, 0.0]
PARAMS = [0.5, -0.4, 0.1, -0.3, 0.8, -0.2, 0.7, -0.6, 0.05]


def network(params, x, order=(0, 1, 2, 3, 4, 5, 6, 7, 8)):
    w11, w12, b1, w21, w22, b2, v1, v2, c = (params[i] for i in order)
    h1 = (w11 * x[0] + w12 * x[1] + b1).tanh()
    h2 = (w21 * x[0] + w22 * x[1] + b2).tanh()
    return (v1 * h1 + v2 * h2 + c).sigmoid()


def mean_loss(params, X, y, order):
    total = 0.0
    for x, label in zip(X, y):
        p = network(params, x, order)
        total = total - (label * p.log() + (1 - label) * (1 - p).log())
    return total / len(X)


def train(params, X, y, lr, num_steps, *, zero=True, sign=1.0, order=(0, 1, 2, 3, 4, 5, 6, 7, 8), after=False):
    """The exercise's train; the keywords build one mistake in."""
    params = [Value(p) for p in params]
    losses = []
    for step in range(num_steps):
        loss = mean_loss(params, X, y, order)
        if zero:
            loss.zero_grad()
        loss.backward()
        for p in params:
            p.data -= sign * lr * p.grad
        losses.append(mean_loss(params, X, y, order).data if after else loss.data)
    return [p.data for p in params], losses


def fails_with(trainer, *phrases, num_steps=3):
    with pytest.raises(AssertionError) as info:
        check_training(trainer, PARAMS, X, y, 0.5, num_steps)
    message = str(info.value)
    for phrase in phrases:
        assert phrase in message, f"{phrase!r} not in:\n{message}"


def test_the_network_and_its_loss():
    zeros = torch.zeros(len(PARAMETERS), dtype=torch.float64)
    points, labels = torch.tensor(X, dtype=torch.float64), torch.tensor(y, dtype=torch.float64)
    assert network_loss(zeros, points, labels).item() == pytest.approx(math.log(2))  # p = 0.5 everywhere
    trained, losses = descend(PARAMS, X, y, lr=2.0, num_steps=300)
    assert losses[0] > 0.7 and losses[-1] < 0.01  # it learns XOR


def test_a_right_training_loop_passes():
    check_training(train, PARAMS, X, y, 0.5, 3)
    check_training(train, PARAMS, X, y, 1.0, 1)


def test_each_mistake_of_a_training_loop_is_named():
    fails_with(lambda *a: train(*a, zero=False), "the gradients pile up across steps", "zero_grad() before loss.backward()")
    fails_with(lambda *a: train(*a, sign=-1.0), "the steps go uphill")
    fails_with(lambda p, *a: (list(p), train(p, *a)[1]), "the parameters did not move", "p.data -= lr * p.grad")
    fails_with(lambda *a: train(*a, order=(1, 0, 2, 3, 4, 5, 6, 7, 8)), "The loss before the first step is", "order of the parameters")
    fails_with(lambda *a: train(*a, after=True), "are right (4 points, lr 0.5), but losses[0] is", "the loss after step k")


def test_what_train_returns_is_checked_before_its_numbers():
    fails_with(lambda *a: train(*a)[0], "train should return two lists, (params, losses)")
    fails_with(lambda *a: (train(*a)[0][:8], train(*a)[1]), "but it returned 8 parameters and 3 losses")
    fails_with(lambda *a: ([Value(p) for p in train(*a)[0]], train(*a)[1]), "plain floats: p.data for each parameter")


def test_train_may_not_use_torch():
    def with_torch(params, X, y, lr, num_steps):
        return descend(params, X, y, lr, num_steps)[0].tolist(), [0.0] * num_steps

    with pytest.raises(AssertionError, match="with_torch called torch.tensor"):
        check_training(with_torch, PARAMS, X, y, 0.5, 3)


def test_recorded_answers_are_checked_the_same_in_the_grader():
    got = run_training(train, PARAMS, X, y, 0.5, 3)
    assert got["params"] == pytest.approx(descend(PARAMS, X, y, 0.5, 3)[0].tolist(), rel=1e-12)
    as_recorded = {key: [torch.tensor(v, dtype=torch.float64) for v in values] for key, values in got.items()}
    assert_training_matches(as_recorded, PARAMS, X, y, 0.5, 3)  # lists of 0-d tensors, as the grader loads them
