"""Time a piece of work fairly: warm it up, repeat it, wait for the device, report the median and the spread.

    from utils.timing import time_it, conditions
    print(conditions())                      # cpu, 2 threads, torch 2.14.1
    t = time_it(lambda: A @ B, repeat=7)     # seconds per call, 7 repetitions after 1 warm-up
    print(t)                                 # 12.3 ms (median of 7, 11.9-14.0 ms)

GPUs run work asynchronously: a call returns as soon as its kernels are queued. `time_it` therefore
synchronizes the device before starting the clock and before stopping it, so it measures the work,
not its launch. The median is reported because a busy machine makes some repetitions slower, never
faster; the range shows how much the machine disturbed the measurement.
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch


def synchronize(device: torch.device | str | None = None) -> None:
    """Wait until the device has finished its queued work (nothing to wait for on a CPU)."""
    kind = torch.device(device).type if device is not None else None
    if kind in (None, "cuda") and torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()
    elif kind == "mps":
        torch.mps.synchronize()


@dataclass(frozen=True)
class Timing:
    """Seconds per call of each repetition, with the median and the range."""

    seconds: tuple[float, ...]

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def fastest(self) -> float:
        return min(self.seconds)

    @property
    def slowest(self) -> float:
        return max(self.seconds)

    @property
    def ms(self) -> float:
        """The median in milliseconds."""
        return self.median * 1e3

    def __str__(self) -> str:
        return (f"{self.ms:.1f} ms (median of {len(self.seconds)}, "
                f"{self.fastest * 1e3:.1f}-{self.slowest * 1e3:.1f} ms)")


def time_it(
    fn: Callable[[], object],
    *,
    repeat: int = 7,
    number: int = 1,
    warmup: int = 1,
    device: torch.device | str | None = None,
) -> Timing:
    """Time `fn()`: `warmup` untimed calls, then `repeat` timings of `number` calls each, in seconds per call."""
    if repeat < 1 or number < 1:
        raise ValueError("repeat and number must be at least 1")
    for _ in range(warmup):  # one-off costs: kernel loading, caches, the allocator's first requests
        fn()
    synchronize(device)
    seconds = []
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        synchronize(device)
        seconds.append((time.perf_counter() - start) / number)
    return Timing(tuple(seconds))


def conditions(device: torch.device | str | None = None) -> str:
    """What a timing depends on: the device (with the GPU's name), the CPU threads and the torch version."""
    device = torch.device(device) if device is not None else torch.device("cpu")
    if device.type == "cuda":
        where = f"cuda ({torch.cuda.get_device_name(device)})"
    elif device.type == "mps":
        where = f"mps ({platform.machine()})"
    else:
        where = "cpu"
    return f"{where}, {torch.get_num_threads()} CPU threads of {os.cpu_count()} cores, torch {torch.__version__}"
