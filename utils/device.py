"""Pick the best available device, and seed every random number generator."""

import random

import torch

from utils.settings import SEED


def get_device() -> torch.device:
    """Return cuda if a GPU is present, else mps (Apple silicon), else cpu."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def seed_everything(seed: int = SEED) -> int:
    """Seed Python's, NumPy's (if installed) and PyTorch's generators on every device."""
    random.seed(seed)
    try:
        import numpy as np
    except ImportError:  # numpy is optional for torch
        pass
    else:
        np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds CUDA and MPS generators
    return seed
