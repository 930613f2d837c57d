"""Find the course on disk and talk to nbgrader about it."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import sys
import tempfile
from pathlib import Path

CONFIG_FILE = "nbgrader_config.py"


class CourseError(Exception):
    """A problem the instructor can fix; the CLI prints its message without a traceback."""


def find_root(start: Path | None = None) -> Path:
    """The course root: the nearest folder, from `start` (default: the working directory) up, with nbgrader_config.py."""
    start = (start or Path.cwd()).resolve()
    for folder in (start, *start.parents):
        if (folder / CONFIG_FILE).is_file() and (folder / "solutions").is_dir():
            return folder
    raise CourseError(f"no course found: run `course` inside the course repository (the folder with {CONFIG_FILE}).")


def exercises(root: Path) -> list[str]:
    """Every exercise that has a source folder in solutions/, in order."""
    return sorted(p.name for p in (root / "solutions").iterdir() if p.is_dir() and any(p.glob("*.ipynb")))


def source_notebook(root: Path, exercise: str) -> Path:
    """The exercise's one source notebook (solutions/<exercise>/<name>.ipynb)."""
    folder = root / "solutions" / exercise
    notebooks = sorted(p for p in folder.glob("*.ipynb")) if folder.is_dir() else []
    if len(notebooks) != 1:
        known = ", ".join(exercises(root)) or "none"
        if not notebooks:
            raise CourseError(f"no exercise {exercise!r}: solutions/{exercise}/ holds no notebook (exercises: {known}).")
        raise CourseError(f"solutions/{exercise}/ holds {len(notebooks)} notebooks; this course expects one per exercise.")
    return notebooks[0]


def nbgrader_api(root: Path):
    """An NbGraderAPI for the course at `root`, configured by its nbgrader_config.py."""
    from nbgrader.apps import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory

    use_this_environment()
    config = load_config(root)
    coursedir = CourseDirectory(config=config)
    # nbgrader logs every step at INFO; the course command prints its own summary instead.
    logging.getLogger("traitlets").setLevel(logging.WARNING)
    with quiet():
        return NbGraderAPI(coursedir=coursedir, config=config)


@contextlib.contextmanager
def quiet():
    """Hold back what nbgrader, Jupyter and their kernels print while they work (results are reported after)."""
    sink = io.StringIO()
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(2)  # kernels are child processes: their stderr is this process's file descriptor 2
    with tempfile.TemporaryFile() as kernel_log:
        os.dup2(kernel_log.fileno(), 2)
        try:
            with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
                yield sink
        finally:
            os.dup2(saved, 2)
            os.close(saved)


_EXCEPTION_LINE = re.compile(r"^\s*(?!nbgrader\.converters\.base\.NbGraderException)[\w.]+(Error|Exception): .+")


def nbgrader_error(result: dict) -> str:
    """The line of a failed NbGraderAPI call's log that says what went wrong."""
    lines = f"{result.get('log') or ''}\n{result.get('error') or ''}".strip().splitlines()
    causes = [line.strip() for line in lines if _EXCEPTION_LINE.match(line)]
    return causes[-1] if causes else (lines[-1].strip() if lines else "no message")


def run_nbgrader(result: dict, what: str) -> str:
    """Raise CourseError with nbgrader's own words if an NbGraderAPI call failed; return its log."""
    if not result.get("success"):
        raise CourseError(f"nbgrader could not {what}: {nbgrader_error(result)}")
    return result.get("log", "")


def use_this_environment() -> None:
    """Put this Python's scripts folder on PATH: nbgrader runs `alembic` from there to create a gradebook."""
    scripts = os.path.dirname(sys.executable)
    if scripts not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = scripts + os.pathsep + os.environ.get("PATH", "")


def load_config(root: Path):
    """The course's nbgrader_config.py, as nbgrader itself reads it."""
    from traitlets.config.loader import PyFileConfigLoader

    return PyFileConfigLoader(CONFIG_FILE, path=str(root)).load_config()


def gradebook_url(root: Path) -> str:
    """The gradebook's database URL, as nbgrader_config.py sets it."""
    return load_config(root).CourseDirectory.get("db_url") or f"sqlite:///{os.path.join(root, 'gradebook.db')}"


def work_folder(root: Path) -> Path:
    """The folder that holds submissions, grades and feedback (coursework/ in this course)."""
    return root / Path(load_config(root).CourseDirectory.get("submitted_directory", "submitted")).parent


def generate_release(root: Path, exercise: str, api=None) -> Path:
    """Run nbgrader generate_assignment for `exercise` in the course at `root`; return the release folder."""
    source_notebook(root, exercise)  # a clear error for an unknown exercise
    with quiet():
        result = (api or nbgrader_api(root)).generate_assignment(exercise, force=True, create=True)
    run_nbgrader(result, f"generate the release of {exercise}")
    return root / "exercises" / exercise
