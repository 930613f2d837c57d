"""utils.memory: exact byte counts of what autograd saves, and peak CUDA memory above the baseline."""

import pytest
import torch

from utils import memory
from utils.memory import peak_cuda_memory, saved_tensor_bytes, saved_tensors


def test_an_output_saved_by_exp_is_counted():
    x = torch.randn(10, requires_grad=True)
    assert saved_tensor_bytes(lambda: x.exp()) == 10 * 4  # exp saves its result


def test_a_storage_saved_twice_is_counted_once():
    x = torch.randn(10, requires_grad=True)
    assert saved_tensor_bytes(lambda: x * x) == 10 * 4  # mul saves both inputs: x and x
    X = torch.randn(30, 20, requires_grad=True)
    assert saved_tensor_bytes(lambda: X @ X.T) == 30 * 20 * 4  # X.T is a view of X's storage
    assert len(saved_tensors(lambda: X @ X.T)) == 1


def test_element_size_follows_the_dtype():
    x = torch.randn(10, dtype=torch.float64, requires_grad=True)
    assert saved_tensor_bytes(lambda: x.exp()) == 10 * 8


def test_different_storages_add_up():
    x = torch.randn(10, requires_grad=True)
    # sin saves x (40 bytes); exp saves its result (40 bytes, a new storage)
    assert saved_tensor_bytes(lambda: x.sin().exp()) == 80


def test_nothing_is_saved_under_no_grad_or_without_requires_grad():
    x = torch.randn(10, requires_grad=True)
    with torch.no_grad():
        assert saved_tensor_bytes(lambda: (x.exp() * x).sum()) == 0
    assert saved_tensor_bytes(lambda: torch.randn(10).exp()) == 0


def test_excluded_storages_are_not_counted():
    X = torch.randn(100, 100, requires_grad=True)
    y = torch.randn(100, 1)

    def loss():
        return ((X @ X.T @ y - y) ** 2).sum()

    everything = saved_tensor_bytes(loss)
    beyond_inputs = saved_tensor_bytes(loss, exclude=[X, y])
    assert everything == 100 * 100 * 4 + 2 * 100 * 4  # X (once), y, and the residual
    assert beyond_inputs == 100 * 4  # only the residual X X^T y - y is new


def test_freed_storages_are_not_mistaken_for_one():
    # Each product is dropped at once; without holding them, their addresses could be reused
    # and the second one would be merged with the first.
    x = torch.randn(10_000, requires_grad=True)

    def twenty_times():
        for _ in range(20):
            x.exp()

    assert saved_tensor_bytes(twenty_times) == 20 * 10_000 * 4


def test_the_graph_still_differentiates_and_is_freed():
    x = torch.randn(10, requires_grad=True)
    saved_tensor_bytes(lambda: x.exp().sum().backward())
    torch.testing.assert_close(x.grad, x.exp())

    kept = saved_tensors(lambda: x.exp())
    assert len(kept) == 1 and kept[0].grad_fn is None  # plain values, not tensors that hold a graph


class FakeCuda:
    """An allocator that records what peak_cuda_memory asks, with 1000 bytes in use beforehand."""

    def __init__(self):
        self.allocated = 1000
        self.peak = 5000  # a peak from earlier work, which must be forgotten

    def reset_peak_memory_stats(self, device=None):
        self.peak = self.allocated

    def allocate(self, n):
        self.allocated += n
        self.peak = max(self.peak, self.allocated)

    def free(self, n):
        self.allocated -= n


@pytest.fixture
def fake_cuda(monkeypatch):
    fake = FakeCuda()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: None)
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda device=None: fake.allocated)
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda device=None: fake.peak)
    monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", fake.reset_peak_memory_stats)
    return fake


def test_peak_is_measured_above_the_baseline(fake_cuda):
    def work():
        fake_cuda.allocate(300)
        fake_cuda.allocate(200)
        fake_cuda.free(500)

    assert peak_cuda_memory(work) == 500
    assert peak_cuda_memory(lambda: None) == 0  # the earlier peak of 5000 does not leak in


def test_peak_cuda_memory_explains_itself_without_a_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(RuntimeError, match="saved_tensor_bytes"):
        peak_cuda_memory(lambda: None)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_peak_on_a_real_gpu():
    def work():
        torch.empty(1 << 20, dtype=torch.uint8, device="cuda")

    assert peak_cuda_memory(work) >= 1 << 20
    assert memory.peak_cuda_memory(lambda: None) == 0
