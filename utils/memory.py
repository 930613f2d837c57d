"""Measure the memory that autograd's graph holds: saved tensors on any device, peak memory on CUDA."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch


def _storage_key(tensor: torch.Tensor) -> int:
    return tensor.untyped_storage().data_ptr()


def saved_tensors(fn: Callable[[], object]) -> list[torch.Tensor]:
    """Run `fn()` and return the tensors autograd saved for its backward pass, one per storage.

    Autograd saves references, not copies: `X` and the view `X.T` share one storage, so they
    appear once. Nothing is saved when grad mode is off (under `torch.no_grad()`).
    """
    kept: dict[int, torch.Tensor] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        # Holding every saved tensor until the end stops a freed storage's address from being reused.
        # detach(): a saved output that held itself (through its grad_fn) would never be freed.
        tensor = tensor.detach()
        key = _storage_key(tensor)
        if key not in kept or tensor.numel() > kept[key].numel():
            kept[key] = tensor
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        fn()
    return list(kept.values())


def saved_tensor_bytes(fn: Callable[[], object], exclude: Iterable[torch.Tensor] = ()) -> int:
    """Bytes of the tensors autograd saves for backward while `fn()` runs, each storage counted once.

    Storages of the tensors in `exclude` (parameters, input data: memory that lives anyway) are
    not counted, so the result is what the graph keeps alive beyond them.
    """
    skip = {_storage_key(t) for t in exclude}
    return sum(t.numel() * t.element_size() for t in saved_tensors(fn) if _storage_key(t) not in skip)


def peak_cuda_memory(fn: Callable[[], object], device: torch.device | str | None = None) -> int:
    """Peak bytes of CUDA memory allocated while `fn()` runs, above what was allocated before it."""
    if not torch.cuda.is_available():
        raise RuntimeError("peak_cuda_memory needs a CUDA GPU; on the CPU, measure saved_tensor_bytes instead.")
    torch.cuda.synchronize(device)
    before = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    fn()
    torch.cuda.synchronize(device)
    return torch.cuda.max_memory_allocated(device) - before
