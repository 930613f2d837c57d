"""The networks that lectures and benchmarks share, built in one place so that they stay the same network."""

from __future__ import annotations

from torch import nn


def make_mlp() -> nn.Sequential:
    """The 10-class MNIST MLP of lecture 06: 784 -> 256 -> 128 -> 10 with ReLU, returning logits.

    It flattens its input, so it takes images of shape (N, 28, 28) or (N, 1, 28, 28) as well as
    rows of 784 pixels. The weights come from PyTorch's default initialization: seed first
    (`torch.manual_seed`) to get the same network every run.
    """
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(784, 256),
        nn.ReLU(),
        nn.Linear(256, 128),
        nn.ReLU(),
        nn.Linear(128, 10),
    )
