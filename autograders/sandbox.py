"""The grader's side of one sandbox: start a worker inside bubblewrap, feed it a submission step by step.

    grader (trusted: gradebook, solutions)        Sandbox.run(job), here
      └─ bwrap: no network, no course root, no home; read-only system, Python and course code
           └─ worker (autograders/worker.py): fork server, then a fresh child per submission

The job (every step of one submission) stays in this process: each step crosses into the sandbox
only when the one before it has finished. Only plain data comes back: the steps' outputs, the
answers that hidden tests recorded, and how the run ended.

Without bubblewrap (macOS, Windows, a Linux without it) the worker runs as a plain subprocess in a
temporary folder with the same limits: a weaker isolation that the grader reports.
"""

from __future__ import annotations

import atexit
import base64
import functools
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from autograders.course import Limits
from autograders.protocol import receive, send

WORKER = "autograders.worker"
OUTPUT_TYPES = {"stream", "display_data", "error"}
STARTING = 300  # seconds a worker may take to import torch and say it is ready (a busy machine is slow)
TALKING = 60  # seconds a worker may take to begin or end a submission
GRACE = 15  # seconds beyond the cell's own limit before the worker itself is taken for stuck (it kills a cell at +5)


@dataclass(frozen=True)
class Settings:
    """How sandboxes are made: isolated (bubblewrap) or not, kept warm or one per submission, threads each."""

    isolated: bool
    warm: bool = True
    threads: int = 1
    data_root: Path | None = None  # read-only inside the sandbox (default: the course's data root)


@dataclass(frozen=True)
class Job:
    """One submission: its steps in order.

    Each step is (code, the test whose answers to take after it or None, skip): a step marked `skip` is
    left out when the step before it ran past the time limit (the hidden part of a test cell calls the
    same code as its visible part: a second wait would only double the cost of an endless loop).
    """

    steps: tuple[tuple[str, str | None, bool], ...]
    limits: Limits = field(default_factory=Limits)


@dataclass
class Outcome:
    """What came back: outputs per step (None: never ran), recorded answers per test, and how it ended."""

    outputs: list[list[dict] | None]
    answers: dict[str, bytes]
    ended: str  # "finished", or why it stopped early
    seconds: float
    isolated: bool
    # Each step's wall time as the grader measured it. The notebook's process may call any error a timeout; only a
    # step that lasted the cell's time limit was stopped by it.
    step_seconds: list[float]


def bwrap_available() -> bool:
    """True where bubblewrap exists and works (Linux with user namespaces or root)."""
    if sys.platform != "linux" or shutil.which("bwrap") is None:
        return False
    probe = subprocess.run(["bwrap", "--unshare-all", "--ro-bind", "/", "/", "--", "true"], capture_output=True, timeout=30)
    return probe.returncode == 0


def _code_roots() -> list[Path]:
    """Folders the worker needs to read: Python itself, this environment, and the course's packages."""
    import autograders
    import utils

    roots = {Path(sys.base_prefix), Path(sys.prefix), Path(sys.executable).parent.parent}
    roots |= {Path(utils.__file__).resolve().parent, Path(autograders.__file__).resolve().parent}
    roots |= {Path(p).resolve() for p in sys.path if p and Path(p).is_dir() and "site-packages" in p}
    return sorted(roots)


def _package_parents() -> list[str]:
    """Where the course's packages are imported from (a checkout, or site-packages): the worker's PYTHONPATH."""
    import autograders
    import utils

    return sorted({str(Path(m.__file__).resolve().parent.parent) for m in (utils, autograders)})


@functools.cache
def _empty_file() -> str:
    """An empty file of this process's own (no other user can have made it): bound over a secret file."""
    handle, path = tempfile.mkstemp(prefix="course-sandbox-empty-")
    os.close(handle)
    atexit.register(os.unlink, path)
    return path


def bwrap_command(data_root: Path | None) -> list[str]:
    """Bubblewrap: a fresh root with only the system, Python and course code (read-only), no network."""
    command = ["bwrap", "--die-with-parent", "--unshare-all", "--new-session", "--cap-drop", "ALL"]
    command += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--tmpfs", "/sandbox"]
    for system in ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/etc"):
        if Path(system).exists():
            command += ["--ro-bind", system, system]
    for root in _code_roots():
        if not str(root).startswith(("/usr/", "/bin", "/lib", "/etc")):
            command += ["--ro-bind", str(root), str(root)]
    samples = Path(__file__).resolve().parent / "samples"
    if samples.is_dir():  # model answers: never in reach of a submission
        command += ["--tmpfs", str(samples)]
    if data_root is not None and Path(data_root).is_dir():
        command += ["--ro-bind", str(data_root), str(data_root)]
        # The grader's own answers: a hidden test hands a model the test images, never their labels.
        from utils.data import LABEL_FILES

        # (An empty regular file, so that torchvision still finds the file and loads the training set.)
        for name in LABEL_FILES:
            if (Path(data_root) / "MNIST" / "raw" / name).is_file():
                command += ["--ro-bind", _empty_file(), str(Path(data_root) / "MNIST" / "raw" / name)]
        if (Path(data_root) / "MNIST" / "processed").is_dir():
            command += ["--tmpfs", str(Path(data_root) / "MNIST" / "processed")]
    command += ["--chdir", "/sandbox", "--setenv", "HOME", "/tmp/home", "--setenv", "TMPDIR", "/tmp"]
    return command + ["--"]


def _well_formed(outputs: object) -> list[dict] | None:
    """The outputs a child sent, kept only where they are what Jupyter outputs look like."""
    if not isinstance(outputs, list):
        return None
    kept = []
    for output in outputs:
        if not isinstance(output, dict) or output.get("output_type") not in OUTPUT_TYPES:
            continue
        kind = output["output_type"]
        if kind == "stream" and isinstance(output.get("text"), str) and output.get("name") in ("stdout", "stderr"):
            kept.append({"output_type": kind, "name": output["name"], "text": output["text"]})
        elif kind == "display_data" and isinstance(output.get("data"), dict):
            data = {str(k): v for k, v in output["data"].items() if isinstance(v, str)}
            kept.append({"output_type": kind, "data": data, "metadata": {}})
        elif kind == "error":
            trace = output.get("traceback")
            kept.append({"output_type": kind, "ename": str(output.get("ename", "Error")), "evalue": str(output.get("evalue", "")),
                         "traceback": [str(line) for line in trace] if isinstance(trace, list) else []})
    return kept


def _close_pipes(process: subprocess.Popen) -> None:
    for stream in (process.stdin, process.stdout):
        try:
            stream.close()
        except OSError:  # a broken pipe's unwritten buffer
            pass


class Sandbox:
    """One worker. `run` executes a job in it; a worker that died is replaced at the next job."""

    def __init__(self, settings: Settings):
        self.settings = settings
        if settings.data_root is None:
            from utils.settings import DATA_ROOT

            self.settings = Settings(settings.isolated, settings.warm, settings.threads, DATA_ROOT)
        self.process: subprocess.Popen | None = None
        self.scratch: tempfile.TemporaryDirectory | None = None
        self._closing = threading.Lock()  # the pool may close a sandbox while its thread still uses it
        self._reading = threading.Lock()  # held while a thread waits on the worker's pipes: close() leaves them to it

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> None:
        settings = self.settings
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LANG": "C.UTF-8",
            "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONSAFEPATH": "1",  # the working folder is never on the path: a planted module is never imported
            "OMP_NUM_THREADS": str(settings.threads),
            "MKL_NUM_THREADS": str(settings.threads),
            "MPLBACKEND": "Agg",
            "NBGRADER_EXECUTION": "autograde",
            "COURSE_DATA_ROOT": str(settings.data_root),
            # the packages this grader imports, not whatever an installer's path hooks would find
            "PYTHONPATH": os.pathsep.join(_package_parents()),
        }
        worker = [sys.executable, "-m", WORKER] + ([] if settings.warm else ["--cold"])
        if settings.isolated:
            command, cwd = bwrap_command(settings.data_root) + worker, None
            env.update(HOME="/tmp/home", TMPDIR="/tmp")
        else:  # the weaker fallback: its own folder, the same limits
            self.scratch = tempfile.TemporaryDirectory(prefix="course-sandbox-")
            command, cwd = worker + ["--scratch", self.scratch.name], self.scratch.name
            env.update(HOME=self.scratch.name, TMPDIR=self.scratch.name)
        process = self.process = subprocess.Popen(
            command, cwd=cwd, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
        )
        with self._reading:
            ready = receive(process.stdout, time.monotonic() + STARTING)
        if self.process is not process:  # closed while it started (the pool was closed)
            _close_pipes(process)
            raise RuntimeError("the grading sandbox was closed while it started")
        if not ready or not ready.get("ready"):
            self.close()
            raise RuntimeError("the grading sandbox did not start (is the course installed in this environment?)")

    def _ask(self, message: dict, seconds: float) -> dict | None:
        """The worker's answer, or None if it died or took longer than `seconds` (then it is killed)."""
        process = self.process
        if process is None:
            return None
        try:
            with self._reading:
                send(process.stdin, message)
                reply = receive(process.stdout, time.monotonic() + seconds)
        except (OSError, ValueError):
            reply = None
        if self.process is not process:  # closed meanwhile: its pipes were left to this thread
            _close_pipes(process)
            return None
        if reply is None:
            self.close()
        return reply

    def _begin(self, limits: Limits) -> bool:
        """A fresh child for the next submission; a worker that cannot make one is replaced once."""
        for _ in range(2):
            if not self.running:
                self.start()
            reply = self._ask({"begin": asdict(limits)}, TALKING)
            if reply and reply.get("begun"):
                return True
            self.close()
        return False

    def run(self, job: Job) -> Outcome:
        started = time.monotonic()
        outputs: list[list[dict] | None] = []
        step_seconds: list[float] = []
        answers: dict[str, bytes] = {}
        ended = "finished"
        if not self._begin(job.limits):
            ended = "the grading sandbox could not start a process for it"
        else:
            for source, collect, skip in job.steps:
                if skip and outputs and any(o.get("ename") == "CellTimeoutError" for o in outputs[-1] or []):
                    outputs.append(None)
                    step_seconds.append(0.0)
                    continue
                asked = time.monotonic()
                reply = self._ask({"run": source, "collect": collect}, job.limits.cell_seconds + GRACE)
                step_seconds.append(time.monotonic() - asked)
                if reply is None:  # the worker died or stopped answering (killed): what it was doing is lost
                    ended = "the grading worker died or stopped answering, and was replaced"
                    break
                outputs.append(_well_formed(reply.get("outputs")))
                recorded = reply.get("answers")
                if collect and isinstance(recorded, dict) and isinstance(recorded.get(collect), str):
                    answers[collect] = base64.b64decode(recorded[collect])
                if reply.get("ended"):
                    ended = str(reply["ended"])
                    break
            if self.running:
                self._ask({"end": True}, TALKING)
        if not self.settings.warm:
            self.close()
        outputs += [None] * (len(job.steps) - len(outputs))
        step_seconds += [0.0] * (len(job.steps) - len(step_seconds))
        return Outcome(outputs, answers, ended, time.monotonic() - started, self.settings.isolated, step_seconds)

    def close(self) -> None:
        with self._closing:
            process, self.process = self.process, None
            if process is not None:
                if process.poll() is None:
                    process.kill()
                process.wait()
                # A thread still reading the pipes sees their end now (the process is dead) and closes them
                # itself: closing a pipe under a reader could hand its file number to another file meanwhile.
                if self._reading.acquire(blocking=False):
                    try:
                        _close_pipes(process)
                    finally:
                        self._reading.release()
            if self.scratch is not None:
                self.scratch.cleanup()
                self.scratch = None
