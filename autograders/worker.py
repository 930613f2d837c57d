"""The worker inside the sandbox: warm up once, fork a clean child per submission, run the steps it is sent.

    python -m autograders.worker [--cold] [--scratch FOLDER]

Inside one sandbox:

    worker      talks to the grader (autograders/sandbox.py) over stdin/stdout; imports torch once
      └─ fork server    forked right after the warm-up, before any submission: it never holds a cell,
           │            an answer or an output, so what it forks starts clean
           └─ child     one per submission: an IPython shell that runs one step at a time

The grader sends each step only when it is due (autograders/protocol.py), and the worker passes it
to the child, so the child never holds a test before it runs. The worker enforces the per-cell time
limit (SIGALRM in the child, SIGKILL if that is ignored), caps memory and output, takes a hidden
test's recorded answers right after that test with the child stopped (a later cell cannot rewrite
them), and after each submission kills every process the child left and wipes the scratch folders.
The worker and the fork server make themselves non-dumpable: a child cannot read their memory.

Without bubblewrap (--scratch FOLDER) the same runs as plain processes in FOLDER: a weaker
isolation that the grader reports. This module imports only the standard library up front.
"""

from __future__ import annotations

import base64
import json
import os
import selectors
import shutil
import signal
import socket
import stat
import sys
import tempfile
import time
import traceback
from pathlib import Path

from autograders.protocol import receive, send


class CellTimeoutError(Exception):
    """The cell ran past the per-cell time limit."""


# ---------------------------------------------------------------- the child: runs a submission's steps


class _CappedStream:
    """A stdout/stderr that keeps at most a shared budget of characters per step."""

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


def _mapped_bytes() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return 0


def _child(cells_in, results_out, request: dict, shell) -> None:
    """Run the steps sent by the worker, one at a time, and send back their outputs."""
    import resource

    from IPython.core.displaypub import CapturingDisplayPublisher

    limits = request["limits"]
    os.setsid()  # its own process group: the worker stops and kills the whole group
    os.chdir(request["workdir"])
    os.environ["COURSE_ANSWERS"] = request["answers"]
    os.environ["HOME"] = request["workdir"]
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    cap = _mapped_bytes() + int(limits["memory_bytes"])
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
        outputs = [{"output_type": "stream", "name": s.name, "text": "".join(s.parts)} for s in (out, err) if s.parts]
        for display in shell.display_pub.outputs:
            data = {k: v for k, v in display["data"].items() if isinstance(v, str) and len(v) <= limits["output_chars"]}
            if data:
                outputs.append({"output_type": "display_data", "data": data, "metadata": {}})
        if budget["dropped"]:
            outputs.append({"output_type": "stream", "name": "stdout",
                            "text": f"\n[output cut: {budget['dropped']} more characters than the grader keeps]\n"})
        outputs.extend(errors)
        send(results_out, {"outputs": outputs})


# ---------------------------------------------------------------- the fork server: forks clean children


def _serve(sock: socket.socket, shell) -> None:
    """Fork a child for each request; hand the worker its two pipe ends (cells in, results out)."""
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped as they end
    while True:
        request = sock.recv(65536)
        if not request:
            return
        cells_r, cells_w = os.pipe()
        results_r, results_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            sock.close()
            os.close(cells_w)
            os.close(results_r)
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            code = 0
            try:
                with os.fdopen(cells_r, "rb") as cells_in, os.fdopen(results_w, "wb") as results_out:
                    _child(cells_in, results_out, json.loads(request), shell)
            except BaseException:
                code = 1
            os._exit(code)
        os.close(cells_r)
        os.close(results_w)
        socket.send_fds(sock, [str(pid).encode()], [cells_w, results_r])
        os.close(cells_w)
        os.close(results_r)


class ForkServer:
    """The worker's handle on its fork server."""

    def __init__(self, shell, private_fds: list[int]):
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        self.pid = os.fork()
        if self.pid == 0:  # the fork server: a clean copy of the warmed-up worker
            ours.close()
            devnull = os.open(os.devnull, os.O_RDWR)
            for fd in private_fds:  # the grader's pipes: nothing forked from here may reach them
                os.dup2(devnull, fd)
            try:
                _serve(theirs, shell)
            finally:
                os._exit(0)
        theirs.close()
        self.sock = ours

    def spawn(self, request: dict):
        """A fresh child: (pid, pipe to send it steps, pipe to read its outputs); None if the server is gone."""
        try:
            self.sock.sendall(json.dumps(request).encode())
            message, fds, _, _ = socket.recv_fds(self.sock, 64, 2)
        except OSError:
            return None
        if not message or len(fds) != 2:
            return None
        return int(message), os.fdopen(fds[0], "wb"), os.fdopen(fds[1], "rb")


# ---------------------------------------------------------------- the worker: one submission at a time


class Submission:
    """One submission's child, driven step by step."""

    def __init__(self, server: ForkServer, limits: dict, scratch: Path):
        self.limits = limits
        self.workdir = Path(tempfile.mkdtemp(prefix="submission-", dir=scratch))
        self.answers = self.workdir / ".answers"
        self.answers.mkdir()
        self.started = time.monotonic()
        self.ended: str | None = None
        spawned = server.spawn({"workdir": str(self.workdir), "answers": str(self.answers), "limits": limits})
        if spawned is None:
            raise RuntimeError("the fork server is gone")
        self.pid, self.cells_out, self.results_in = spawned

    def run(self, source: str, collect: str | None) -> dict:
        if self.ended:
            return {"outputs": None, "answers": {}, "ended": self.ended}
        self._clear_answers()  # nothing recorded before this step counts for it
        try:
            send(self.cells_out, {"source": source})
        except OSError:
            self.ended = "the notebook's process exited"
            return {"outputs": None, "answers": {}, "ended": self.ended}
        selector = selectors.DefaultSelector()
        selector.register(self.results_in, selectors.EVENT_READ)
        grace = float(self.limits["cell_seconds"]) + 5  # SIGALRM first; SIGKILL if the cell ignores it
        if not selector.select(timeout=grace):
            self._signal(signal.SIGKILL)
            self.ended = "killed after a cell ran past the time limit"
            timeout = {"output_type": "error", "ename": "CellTimeoutError", "traceback": [],
                       "evalue": f"the cell ran longer than the {self.limits['cell_seconds']:g} s limit and was killed"}
            return {"outputs": [timeout], "answers": {}, "ended": self.ended}
        # The child says when it is done; it may lie about how much follows, or stop in the middle.
        largest = 4 * int(self.limits["output_chars"]) + (8 << 20)
        reply = receive(self.results_in, time.monotonic() + grace, largest)
        if reply is None:
            self._signal(signal.SIGKILL)
            self.ended = "the notebook's process exited, or sent what the grader could not read"
            return {"outputs": None, "answers": {}, "ended": self.ended}
        answers = {}
        if collect:
            self._signal(signal.SIGSTOP)  # nothing the submission left running can write while we read
            data = self._read_answer(collect)
            self._clear_answers()
            self._signal(signal.SIGCONT)
            if data is not None:
                answers[collect] = base64.b64encode(data).decode()
        return {"outputs": reply.get("outputs"), "answers": answers, "ended": None}

    def _signal(self, signum: int) -> None:
        try:
            os.killpg(self.pid, signum)
        except (ProcessLookupError, PermissionError):
            pass

    def _read_answer(self, grade_id: str) -> bytes | None:
        path = self.answers / f"{grade_id}.pt"
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError:
            return None
        with os.fdopen(fd, "rb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                return None
            data = f.read(int(self.limits["answer_bytes"]) + 1)
        return data if len(data) <= int(self.limits["answer_bytes"]) else None

    def _clear_answers(self) -> None:
        shutil.rmtree(self.answers, ignore_errors=True)
        self.answers.mkdir(exist_ok=True)

    def finish(self, isolated: bool, spare: set[int]) -> float:
        """Kill the child and all it started, wipe its folders; return the seconds it took."""
        for stream in (self.cells_out, self.results_in):
            try:
                stream.close()
            except OSError:
                pass
        self._signal(signal.SIGKILL)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:  # the fork server reaps it
            try:
                os.kill(self.pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.01)
        if isolated:
            _kill_everything_else(spare)
        shutil.rmtree(self.workdir, ignore_errors=True)
        # Nothing a submission wrote survives it: not in its folder, nor anywhere else it could write.
        for folder in ([self.workdir.parent, Path("/tmp"), Path("/dev/shm")] if isolated else [self.workdir.parent]):
            _empty(folder)
        Path(os.environ.get("HOME", "/tmp/home")).mkdir(parents=True, exist_ok=True)
        return time.monotonic() - self.started


def _empty(folder: Path) -> None:
    """Remove everything inside `folder` (the folder itself stays)."""
    try:
        entries = list(folder.iterdir())
    except OSError:
        return
    for entry in entries:
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            try:
                entry.unlink()
            except OSError:
                pass


def _kill_everything_else(spare: set[int]) -> None:
    """Kill every process in this sandbox except the worker, its fork server and the sandbox's init."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) not in spare:
            try:
                os.kill(int(entry.name), signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass


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
        for module in ("matplotlib.pyplot", "utils.checks", "utils.grading", "torchvision", "tqdm.auto", "utils.data",
                       "utils.training"):
            try:
                __import__(module)
            except ImportError:
                pass
    config = Config()
    config.HistoryManager.enabled = False
    return InteractiveShell.instance(config=config)


def _not_dumpable() -> None:
    """Forbid reading this process's memory from another process of the same user (PR_SET_DUMPABLE = 0)."""
    try:
        import ctypes

        ctypes.CDLL(None).prctl(4, 0, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def main(argv: list[str]) -> int:
    scratch = Path(argv[argv.index("--scratch") + 1]) if "--scratch" in argv else Path("/sandbox")
    isolated = "--scratch" not in argv
    messages_out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # anything printed by libraries must not corrupt the message stream
    messages_in = os.fdopen(0, "rb")
    Path(os.environ.get("HOME", "/tmp")).mkdir(parents=True, exist_ok=True)
    shell = _warm_up("--cold" in argv)
    _not_dumpable()
    server = ForkServer(shell, [messages_in.fileno(), messages_out.fileno()])
    spare = {os.getpid(), server.pid, 1, os.getppid()}
    send(messages_out, {"ready": True})
    submission: Submission | None = None
    while (message := receive(messages_in)) is not None:
        if "begin" in message:
            try:
                submission = Submission(server, message["begin"], scratch)
            except RuntimeError as error:  # the last submission killed the fork server: start afresh
                send(messages_out, {"restart": str(error)})
                return 1
            send(messages_out, {"begun": True})
        elif "run" in message and submission is not None:
            send(messages_out, submission.run(message["run"], message.get("collect")))
        elif "end" in message and submission is not None:
            seconds = submission.finish(isolated, spare)
            submission = None
            send(messages_out, {"seconds": seconds})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
