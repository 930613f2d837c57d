"""Run a student's notebook where it can harm nothing: a sandbox per worker, a fresh child per submission.

Layout of one execution:

    grader (trusted: gradebook, solutions)          --- host side: `Sandbox.run(job)`
      └─ bwrap: no network, no course root, no home; read-only system, Python and course code
           └─ worker (`python -m autograders.sandbox`): has imported torch once (warm)
                └─ child, forked per submission: an IPython shell that runs the cells one at a time

The worker gets a job (the notebook's code cells and the limits), forks a child, and hands it one
cell at a time, so the child never holds a test cell before it runs. It enforces the per-cell time
limit (SIGALRM in the child, SIGKILL if that is ignored), caps memory and output, and after each
submission kills every process the child left and wipes the scratch folders, so the next
submission starts clean. Only plain data leaves the sandbox: the cells' outputs and the answers
that the hidden tests recorded (see utils/grading.py); the grader judges them in its own process.

Without bubblewrap (macOS, Windows, a Linux without it) the worker runs as a plain subprocess in
a temporary folder with the same limits: a weaker isolation that the grader reports.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

MESSAGE = struct.Struct("!Q")  # every message: its length, then that many bytes of JSON


def send(stream, data: dict) -> None:
    payload = json.dumps(data).encode()
    stream.write(MESSAGE.pack(len(payload)) + payload)
    stream.flush()


def receive(stream) -> dict | None:
    """The next message, or None when the other side has gone."""
    head = stream.read(MESSAGE.size)
    if len(head) < MESSAGE.size:
        return None
    (size,) = MESSAGE.unpack(head)
    payload = stream.read(size)
    return json.loads(payload) if len(payload) == size else None


@dataclass
class Limits:
    """What one submission may use."""

    cell_seconds: float = 30
    memory_bytes: int = 4 << 30  # on top of what the worker already maps (torch alone maps a lot)
    output_chars: int = 100_000  # per cell, all streams together
    answer_bytes: int = 50 << 20  # the recorded answers of all graded cells


@dataclass
class Job:
    """One submission: the source of its code cells, in order."""

    cells: list[str]
    limits: Limits = field(default_factory=Limits)


@dataclass
class Outcome:
    """What came back: outputs per code cell (None: never ran), recorded answers, and how it ended."""

    outputs: list[list[dict] | None]
    answers: dict[str, bytes]
    ended: str  # "finished", or why it stopped early
    seconds: float


# ---------------------------------------------------------------- host side (the grader)


def bwrap_available() -> bool:
    """True where bubblewrap exists and works (Linux with user namespaces or root)."""
    if sys.platform != "linux" or shutil.which("bwrap") is None:
        return False
    probe = subprocess.run(
        ["bwrap", "--unshare-all", "--ro-bind", "/", "/", "--", "true"], capture_output=True, timeout=30
    )
    return probe.returncode == 0


def _code_roots() -> list[Path]:
    """Folders the worker needs to read: Python itself, this environment, and the course's packages."""
    import autograders
    import utils

    roots = {Path(sys.base_prefix), Path(sys.prefix), Path(sys.executable).parent.parent}
    roots |= {Path(utils.__file__).resolve().parent, Path(autograders.__file__).resolve().parent}
    roots |= {Path(p).resolve() for p in sys.path if p and Path(p).is_dir() and "site-packages" in p}
    return sorted(roots)


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
    command += ["--chdir", "/sandbox"]
    command += ["--setenv", "HOME", "/tmp/home", "--setenv", "TMPDIR", "/tmp"]
    return command + ["--"]


class Sandbox:
    """One worker. `run` executes a job in it; a worker that died is replaced at the next job.

    isolated: None picks bubblewrap when it works; False forces the weaker fallback.
    warm: keep the worker (and its imported torch) for the next job; False starts one per job.
    """

    def __init__(self, isolated: bool | None = None, warm: bool = True, threads: int = 1, data_root: Path | None = None):
        self.isolated = bwrap_available() if isolated is None else isolated
        self.warm, self.threads = warm, threads
        if data_root is None:
            from utils.settings import DATA_ROOT

            data_root = DATA_ROOT
        self.data_root = Path(data_root)
        self.process: subprocess.Popen | None = None
        self.scratch: tempfile.TemporaryDirectory | None = None

    def _start(self) -> None:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LANG": "C.UTF-8",
            "PYTHONDONTWRITEBYTECODE": "1",
            "OMP_NUM_THREADS": str(self.threads),
            "MKL_NUM_THREADS": str(self.threads),
            "MPLBACKEND": "Agg",
            "NBGRADER_EXECUTION": "autograde",
            "COURSE_DATA_ROOT": str(self.data_root),
        }
        worker = [sys.executable, "-m", "autograders.sandbox"] + ([] if self.warm else ["--cold"])
        if self.isolated:
            command, cwd = bwrap_command(self.data_root) + worker, None
            env.update(HOME="/tmp/home", TMPDIR="/tmp")
        else:  # the weaker fallback: its own folder, the same limits
            self.scratch = tempfile.TemporaryDirectory(prefix="course-sandbox-")
            command, cwd = worker + ["--scratch", self.scratch.name], self.scratch.name
            env.update(HOME=self.scratch.name, TMPDIR=self.scratch.name)
            env["PYTHONPATH"] = os.pathsep.join(str(p) for p in _code_roots())
        self.process = subprocess.Popen(
            command, cwd=cwd, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
        )
        ready = receive(self.process.stdout)
        if not ready or not ready.get("ready"):
            self.close()
            raise RuntimeError("the grading sandbox did not start (is the course installed in this environment?)")

    def run(self, job: Job) -> Outcome:
        if self.process is None or self.process.poll() is not None:
            self._start()
        started = time.monotonic()
        try:
            send(self.process.stdin, {"cells": job.cells, "limits": job.limits.__dict__})
            reply = receive(self.process.stdout)
        except (BrokenPipeError, OSError):
            reply = None
        if reply is None:  # the worker itself died: nothing it said can be trusted to be complete
            self.close()
            reply = {"outputs": [None] * len(job.cells), "answers": {}, "ended": "the grading worker died"}
        elif not self.warm:
            self.close()
        answers = {}
        for name, text in reply.get("answers", {}).items():
            answers[str(name)] = base64.b64decode(text)
        outputs = reply.get("outputs") or []
        outputs = (list(outputs) + [None] * len(job.cells))[: len(job.cells)]
        return Outcome(outputs, answers, str(reply.get("ended", "")), time.monotonic() - started)

    def close(self) -> None:
        if self.process is not None:
            if self.process.poll() is None:
                self.process.kill()
            self.process.wait()
            for stream in (self.process.stdin, self.process.stdout):
                stream.close()
            self.process = None
        if self.scratch is not None:
            self.scratch.cleanup()
            self.scratch = None


# ---------------------------------------------------------------- inside the sandbox (the worker)


class CellTimeoutError(Exception):
    """The cell ran past the per-cell time limit."""


class _CappedStream:
    """A stdout/stderr that keeps at most `cap` characters (shared budget per cell)."""

    def __init__(self, name: str, budget: dict):
        self.name, self.budget, self.parts = name, budget, []
        self.encoding, self.errors = "utf-8", "replace"

    def write(self, text) -> int:
        text = str(text)
        room = self.budget["left"]
        if len(text) > room:
            self.budget["dropped"] += len(text) - max(room, 0)
            text = text[: max(room, 0)]
        self.budget["left"] -= len(text)
        if text:
            self.parts.append(text)
        return len(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        raise OSError("no file descriptor in the grading sandbox")


def _stream_outputs(streams: list[_CappedStream]) -> list[dict]:
    return [{"output_type": "stream", "name": s.name, "text": "".join(s.parts)} for s in streams if s.parts]


def _child(cells_in, results_out, limits: dict, shell) -> None:
    """Run cells sent by the worker, one at a time, and send back their outputs."""
    import resource

    from IPython.core.displaypub import CapturingDisplayPublisher

    os.setsid()  # its own process group: the worker kills the whole group afterwards
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    mapped = _mapped_bytes()
    cap = mapped + int(limits["memory_bytes"])
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap if hard == resource.RLIM_INFINITY else min(cap, hard)))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

    def on_alarm(signum, frame):
        raise CellTimeoutError(f"the cell ran longer than the {limits['cell_seconds']:g} s limit")

    signal.signal(signal.SIGALRM, on_alarm)
    errors: list[dict] = []

    def show_traceback(*args, **kwargs):
        """Record the error plainly: the time limit stops here, and no slow colouring (pygments) runs."""
        signal.setitimer(signal.ITIMER_REAL, 0)
        etype, evalue, tb = sys.exc_info()
        if etype is None:
            return
        lines = traceback.format_exception(etype, evalue, tb.tb_next if tb is not None else None)
        errors.append({"output_type": "error", "ename": etype.__name__, "evalue": str(evalue), "traceback": lines})

    shell.showtraceback = show_traceback
    shell.showsyntaxerror = show_traceback
    shell.display_pub = CapturingDisplayPublisher()
    shell.display_pub.shell = shell
    while True:
        message = receive(cells_in)
        if message is None or "source" not in message:
            break
        errors.clear()
        shell.display_pub.outputs.clear()
        budget = {"left": int(limits["output_chars"]), "dropped": 0}
        out, err = _CappedStream("stdout", budget), _CappedStream("stderr", budget)
        saved = sys.stdout, sys.stderr
        sys.stdout, sys.stderr = out, err
        try:
            signal.setitimer(signal.ITIMER_REAL, float(limits["cell_seconds"]))
            try:
                shell.run_cell(message["source"], store_history=False)
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
        except CellTimeoutError as error:  # the alarm arrived outside the cell's own code
            errors.append({"output_type": "error", "ename": "CellTimeoutError", "evalue": str(error), "traceback": []})
        finally:
            sys.stdout, sys.stderr = saved
        outputs = _stream_outputs([out, err])
        for display in shell.display_pub.outputs:
            data = {k: v for k, v in display["data"].items() if isinstance(v, str) and len(v) <= limits["output_chars"]}
            if data:
                outputs.append({"output_type": "display_data", "data": data, "metadata": {}})
        if budget["dropped"]:
            outputs.append({"output_type": "stream", "name": "stdout",
                            "text": f"\n[output cut: {budget['dropped']} more characters than the grader keeps]\n"})
        outputs.extend(errors)
        send(results_out, {"outputs": outputs})


def _mapped_bytes() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return 0


def _kill_everything_else() -> None:
    """Kill every process in this sandbox except the worker and the sandbox's init."""
    me = os.getpid()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) not in (me, 1, os.getppid()):
            try:
                os.kill(int(entry.name), signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass


def _collect_answers(folder: Path, limit: int) -> dict[str, str]:
    answers, total = {}, 0
    for path in sorted(folder.glob("*.pt")) if folder.is_dir() else []:
        size = path.stat().st_size
        if total + size > limit:
            break
        total += size
        answers[path.stem] = base64.b64encode(path.read_bytes()).decode()
    return answers


def _run_job(job: dict, shell, scratch: Path, isolated: bool) -> dict:
    """Fork a child for one submission and feed it the cells; always returns what is known."""
    limits = job["limits"]
    workdir = Path(tempfile.mkdtemp(prefix="submission-", dir=scratch))
    answers = workdir / ".answers"
    to_child_r, to_child_w = os.pipe()
    from_child_r, from_child_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: becomes the submission's kernel
        os.close(to_child_w)
        os.close(from_child_r)
        os.chdir(workdir)
        os.environ["COURSE_ANSWERS"] = str(answers)
        os.environ["HOME"] = str(workdir)
        code = 0
        try:
            with os.fdopen(to_child_r, "rb") as cells_in, os.fdopen(from_child_w, "wb") as results_out:
                _child(cells_in, results_out, limits, shell)
        except BaseException:
            code = 1
        os._exit(code)
    os.close(to_child_r)
    os.close(from_child_w)
    outputs, ended = [], "finished"
    with os.fdopen(to_child_w, "wb") as cells_out, os.fdopen(from_child_r, "rb") as results_in:
        import selectors

        for source in job["cells"]:
            try:
                send(cells_out, {"source": source})
            except (BrokenPipeError, OSError):
                ended = "the notebook's process exited"
                break
            selector = selectors.DefaultSelector()
            selector.register(results_in, selectors.EVENT_READ)
            grace = float(limits["cell_seconds"]) + 5  # SIGALRM first; SIGKILL if the cell ignores it
            if not selector.select(timeout=grace):
                os.killpg(pid, signal.SIGKILL)
                outputs.append([{"output_type": "error", "ename": "CellTimeoutError",
                                 "evalue": f"the cell ran longer than the {limits['cell_seconds']:g} s limit and was killed",
                                 "traceback": []}])
                ended = "killed after a cell ran past the time limit"
                break
            reply = receive(results_in)
            if reply is None:
                ended = "the notebook's process exited"
                break
            outputs.append(reply["outputs"])
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    os.waitpid(pid, 0)
    if isolated:
        _kill_everything_else()
    reply = {"outputs": outputs, "answers": _collect_answers(answers, int(limits["answer_bytes"])), "ended": ended}
    shutil.rmtree(workdir, ignore_errors=True)
    if isolated:  # a clean /tmp for the next submission
        for entry in Path("/tmp").iterdir():
            shutil.rmtree(entry, ignore_errors=True) if entry.is_dir() else entry.unlink(missing_ok=True)
        Path("/tmp/home").mkdir(exist_ok=True)
    return reply


def _warm_up(cold: bool = False):
    """Import what exercises import, once, before any fork; and make the shell children start from.

    A cold worker serves one submission only, so it imports just torch (every exercise needs it, and
    the memory cap is measured above it) and leaves the rest to the notebook.
    """
    import torch  # noqa: F401
    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config

    if not cold:
        import matplotlib

        matplotlib.use("Agg")
        for module in ("matplotlib.pyplot", "utils.checks", "utils.grading", "torchvision", "tqdm.auto", "utils.data", "utils.training"):
            try:
                __import__(module)
            except ImportError:
                pass

    config = Config()
    config.HistoryManager.enabled = False
    return InteractiveShell.instance(config=config)


def main(argv: list[str]) -> int:
    scratch = Path(argv[argv.index("--scratch") + 1]) if "--scratch" in argv else Path("/sandbox")
    isolated = "--scratch" not in argv
    cold = "--cold" in argv
    messages_out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # anything printed by libraries must not corrupt the message stream
    messages_in = os.fdopen(0, "rb")
    Path(os.environ.get("HOME", "/tmp")).mkdir(parents=True, exist_ok=True)
    shell = _warm_up(cold)
    try:  # the submission's child must not read the worker's memory (it holds later test cells)
        import ctypes

        ctypes.CDLL(None).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE = 4
    except (OSError, AttributeError):
        pass
    send(messages_out, {"ready": True})
    while (job := receive(messages_in)) is not None:
        started = time.monotonic()
        reply = _run_job(job, shell, scratch, isolated)
        reply["seconds"] = time.monotonic() - started
        send(messages_out, reply)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
