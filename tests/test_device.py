"""utils.device: cuda, then mps, then cpu; one seed makes every generator repeat."""

import random

import torch

from utils import device
from utils.settings import SEED


def test_cpu_when_nothing_else(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert device.get_device() == torch.device("cpu")


def test_cuda_first(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert device.get_device() == torch.device("cuda")


def test_mps_before_cpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert device.get_device() == torch.device("mps")


def test_the_device_found_here_works():
    assert (torch.ones(2, device=device.get_device()) * 2).sum().item() == 4.0


def test_seed_everything_repeats_every_generator():
    import numpy as np

    def draw():
        return random.random(), np.random.rand(), torch.rand(1).item()

    assert device.seed_everything() == SEED
    first = draw()
    device.seed_everything()
    assert draw() == first
    device.seed_everything(SEED + 1)
    assert draw() != first
