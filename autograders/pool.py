"""Sandboxes that run submissions in parallel: warm workers on this machine, or a Dask cluster's.

The caller owns the pool and may grade many exercises (and many courses) with it, so `course demo`,
`course release --check` and the tests boot each sandbox once:

    with Pool(workers=2) as pool:
        grade(course, "ex01", submissions, pool)
        grade(course, "ex02", others, pool)
"""

from __future__ import annotations

import itertools
import os
import threading
from concurrent.futures import Executor, Future, ThreadPoolExecutor

from autograders.sandbox import Job, Outcome, Sandbox, Settings, bwrap_available

_local = threading.local()
_sandboxes: dict[str, list[Sandbox]] = {}  # by the name of the thread that owns them
_sandboxes_lock = threading.Lock()
_pools = itertools.count()


def _sandbox(settings: Settings) -> Sandbox:
    """This thread's sandbox for these settings (each worker thread, here or on a Dask worker, keeps its own)."""
    mine = _local.__dict__.setdefault("sandboxes", {})
    if settings not in mine:
        mine[settings] = Sandbox(settings)
        with _sandboxes_lock:
            _sandboxes.setdefault(threading.current_thread().name, []).append(mine[settings])
    return mine[settings]


def run_job(job: Job, settings: Settings) -> Outcome:
    """Run one submission in this thread's sandbox (the function a Dask worker runs too)."""
    return _sandbox(settings).run(job)


def _boot(settings: Settings) -> None:
    sandbox = _sandbox(settings)
    if not sandbox.running:
        sandbox.start()


def _close_sandboxes(prefix: str) -> None:
    """Close the sandboxes of the threads named `prefix`-something (one pool's)."""
    with _sandboxes_lock:
        for thread in [name for name in _sandboxes if name.startswith(prefix)]:
            for sandbox in _sandboxes.pop(thread):
                sandbox.close()


class Pool:
    """`workers` sandboxes on this machine (booted at once, in the background), or an executor's workers.

    isolated: None picks bubblewrap where it works; False forces the weaker fallback.
    warm: keep each worker (and its imported torch) for the next submission; False starts one per submission.
    """

    def __init__(self, workers: int | None = None, *, isolated: bool | None = None, warm: bool = True,
                 executor: Executor | None = None, client=None):
        cores = os.cpu_count() or 1
        self.workers = workers or cores
        isolated = bwrap_available() if isolated is None else isolated
        self.settings = Settings(isolated, warm, threads=max(1, cores // self.workers))
        self.owned = executor is None
        self.client = client  # a Dask client behind `executor`: closed with the pool
        self.prefix = f"grading-pool{next(_pools)}-"
        self.executor = executor or ThreadPoolExecutor(self.workers, thread_name_prefix=self.prefix)
        if self.owned:
            for _ in range(self.workers):
                self.executor.submit(_boot, self.settings)

    @property
    def isolated(self) -> bool:
        return self.settings.isolated

    def submit(self, job: Job) -> Future:
        return self.executor.submit(run_job, job, self.settings)

    def close(self) -> None:
        """Stop: queued submissions are dropped, running ones killed with their sandboxes."""
        if self.owned:
            self.executor.shutdown(wait=False, cancel_futures=True)
            _close_sandboxes(self.prefix)
            self.executor.shutdown(wait=True)
            _close_sandboxes(self.prefix)  # any a thread made while the first close ran
        if self.client is not None:
            self.client.close()

    def __enter__(self) -> Pool:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
