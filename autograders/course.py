"""The course on disk, read once: its nbgrader settings, and each exercise's source notebook.

Every stage of the grader receives a `Course` (nbgrader_config.py executed once) and an `Exercise`
(its source notebook parsed once: test cells in order, their points, hidden tests and rules), so no
stage reads the configuration or the source notebook again.
"""

from __future__ import annotations

import contextlib
import functools
import io
import logging
import os
import re
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

CONFIG_FILE = "nbgrader_config.py"
HIDDEN = re.compile(r"### BEGIN HIDDEN TESTS\n(.*?)### END HIDDEN TESTS\n?", re.DOTALL)
RULES_KEY = "course"  # cell metadata: {"course": {"rules": [...]}} on a test cell declares what guards its points


@dataclass(frozen=True)
class Public:
    """Where students get the course: a public GitHub repository and branch ([tool.course] in pyproject.toml)."""

    repository: str  # owner/name
    branch: str = "main"

    @property
    def url(self) -> str:
        return f"https://github.com/{self.repository}"

    def colab(self, path: str) -> str:
        """The "Open in Colab" address of a notebook at `path` in the public repository."""
        return f"https://colab.research.google.com/github/{self.repository}/blob/{self.branch}/{path}"

    @property
    def pip(self) -> str:
        """What `pip install` takes to install the student package from the public repository."""
        return f"autodiff-course @ git+{self.url}@{self.branch}"


def read_public(root: Path) -> Public:
    """The public location configured in the course's pyproject.toml."""
    import tomllib

    try:
        settings = tomllib.loads((Path(root) / "pyproject.toml").read_text())["tool"]["course"]
        return Public(settings["public-repository"], settings.get("public-branch", "main"))
    except (OSError, KeyError, tomllib.TOMLDecodeError) as error:
        raise CourseError(f"pyproject.toml must name the students' public repository in [tool.course] "
                          f"(public-repository = \"owner/name\"): {error}") from None


class CourseError(Exception):
    """A problem the instructor can fix; the CLI prints its message without a traceback."""


@dataclass(frozen=True)
class Limits:
    """What one submission may use in the sandbox."""

    cell_seconds: float = 30
    memory_bytes: int = 4 << 30  # on top of what the worker already maps (torch alone maps a lot)
    output_chars: int = 100_000  # per cell, all streams together
    answer_bytes: int = 50 << 20  # the recorded answers of one test cell


@dataclass(frozen=True)
class TestCell:
    """One graded cell of an exercise, as its source notebook defines it."""

    __test__ = False  # not a pytest test class, despite its name

    grade_id: str
    points: float
    hidden: str  # the code of its hidden tests ("" when it has none)
    rules: tuple[dict, ...] = ()  # declared in the cell's metadata: what its points forbid

    @property
    def records_answers(self) -> bool:
        """True when its hidden tests hand their answers to the grader (utils.grading.graded)."""
        return "graded(" in self.hidden


@dataclass
class Exercise:
    """An exercise's source notebook, parsed once: its test cells in order, hidden tests and rules."""

    name: str
    source: Path
    notebook: nbformat.NotebookNode
    tests: list[TestCell] = field(default_factory=list)

    @classmethod
    def read(cls, name: str, source: Path) -> Exercise:
        notebook = nbformat.read(source, as_version=4)
        tests = []
        for cell in notebook.cells:
            meta = cell.get("metadata", {})
            nbgrader = meta.get("nbgrader", {})
            if nbgrader.get("grade"):
                hidden = "\n".join(HIDDEN.findall(cell.source))
                rules = tuple(meta.get(RULES_KEY, {}).get("rules", ()))
                tests.append(TestCell(nbgrader["grade_id"], float(nbgrader.get("points", 0)), hidden, rules))
        return cls(name, source, notebook, tests)

    @property
    def order(self) -> list[str]:
        return [t.grade_id for t in self.tests]

    @property
    def max_score(self) -> float:
        return sum(t.points for t in self.tests)

    @property
    def notebook_id(self) -> str:
        return self.source.stem

    def test(self, grade_id: str) -> TestCell | None:
        return next((t for t in self.tests if t.grade_id == grade_id), None)

    @functools.cached_property
    def compiled_hidden(self) -> dict[str, object]:
        """grade_id -> the compiled code of its hidden tests, for the grader's own re-check."""
        return {t.grade_id: compile(t.hidden, f"<hidden tests of {t.grade_id}>", "exec") for t in self.tests if t.records_answers}


class Course:
    """A course folder: nbgrader_config.py read once, and its exercises read once each."""

    def __init__(self, root: Path):
        self.root = Path(root).resolve()
        if not (self.root / CONFIG_FILE).is_file():
            raise CourseError(f"no course at {self.root}: it has no {CONFIG_FILE}.")
        self.config = load_config(self.root)
        directories = self.config.CourseDirectory
        self.db_url: str = directories.get("db_url") or f"sqlite:///{self.root / 'gradebook.db'}"
        self.work = self.root / Path(directories.get("submitted_directory", "submitted")).parent
        timeout = self.config.Execute.get("timeout")
        self.limits = Limits(cell_seconds=float(timeout)) if timeout else Limits()
        self._exercises: dict[str, Exercise] = {}
        self._api = None

    @functools.cached_property
    def public(self) -> Public:
        """Where students get the course (pyproject.toml's [tool.course])."""
        return read_public(self.root)

    @classmethod
    def find(cls, start: Path | None = None) -> Course:
        """The course in `start` (default: the working directory) or the nearest folder above it."""
        start = (start or Path.cwd()).resolve()
        for folder in (start, *start.parents):
            if (folder / CONFIG_FILE).is_file() and (folder / "solutions").is_dir():
                return cls(folder)
        raise CourseError(f"no course found: run `course` inside the course repository (the folder with {CONFIG_FILE}).")

    def exercise_names(self) -> list[str]:
        """Every exercise that has a source folder in solutions/, in order."""
        folder = self.root / "solutions"
        return sorted(p.name for p in folder.iterdir() if p.is_dir() and any(p.glob("*.ipynb"))) if folder.is_dir() else []

    def exercise(self, name: str) -> Exercise:
        """The exercise `name`, its source notebook (solutions/<name>/<notebook>.ipynb) read on first use."""
        if name not in self._exercises:
            folder = self.root / "solutions" / name
            notebooks = sorted(folder.glob("*.ipynb")) if folder.is_dir() else []
            if len(notebooks) != 1:
                known = ", ".join(self.exercise_names()) or "none"
                if not notebooks:
                    raise CourseError(f"no exercise {name!r}: solutions/{name}/ holds no notebook (exercises: {known}).")
                raise CourseError(f"solutions/{name}/ holds {len(notebooks)} notebooks; this course expects one per exercise.")
            self._exercises[name] = Exercise.read(name, notebooks[0])
        return self._exercises[name]

    def forget(self, name: str) -> None:
        """Read the exercise's source notebook again at next use (after it was edited)."""
        self._exercises.pop(name, None)

    # ---- where things are

    def release_folder(self, exercise: str) -> Path:
        return self.root / "exercises" / exercise

    def results_folder(self, exercise: str) -> Path:
        """One JSON file per student: score, reasons, flags (written as soon as each is known)."""
        return self.work / "results" / exercise

    def autograded_notebook(self, student: str, exercise: Exercise) -> Path:
        directories = self.config.CourseDirectory
        folder = self.root / directories.get("autograded_directory", "autograded") / student / exercise.name
        return folder / f"{exercise.notebook_id}.ipynb"

    def feedback_folder(self) -> Path:
        return self.root / self.config.CourseDirectory.get("feedback_directory", "feedback")

    def relative(self, path: Path) -> Path:
        """`path` relative to the course root where it lies inside it (for messages)."""
        path = Path(path)
        return path.relative_to(self.root) if path.is_relative_to(self.root) else path

    # ---- nbgrader

    def api(self):
        """nbgrader's API for this course (created once)."""
        if self._api is None:
            from nbgrader.apps import NbGraderAPI
            from nbgrader.coursedir import CourseDirectory

            use_this_environment()
            self.work.mkdir(parents=True, exist_ok=True)  # sqlite cannot create the gradebook in a missing folder
            logging.getLogger("traitlets").setLevel(logging.WARNING)  # nbgrader logs every step at INFO
            with quiet():
                self._api = NbGraderAPI(coursedir=CourseDirectory(config=self.config), config=self.config)
        return self._api

    def gradebook(self):
        """nbgrader's gradebook of this course, as a context manager."""
        from nbgrader.api import Gradebook

        use_this_environment()  # a new gradebook is made by running `alembic` from this environment
        self.work.mkdir(parents=True, exist_ok=True)
        return Gradebook(self.db_url)

    def generate_release(self, exercise: str) -> Path:
        """Run nbgrader generate_assignment for `exercise`; return the release folder."""
        self.exercise(exercise)  # a clear error for an unknown exercise
        with quiet():
            result = self.api().generate_assignment(exercise, force=True, create=True)
        run_nbgrader(result, f"generate the release of {exercise}")
        return self.release_folder(exercise)

    def ensure_released(self, exercise: str) -> None:
        """Make sure the gradebook knows the exercise's test cells (nbgrader learns them at generation)."""
        from nbgrader.api import MissingEntry

        with self.gradebook() as gradebook:
            try:
                gradebook.find_assignment(exercise)
                return
            except MissingEntry:
                pass
        self.generate_release(exercise)


def load_config(root: Path):
    """The course's nbgrader_config.py, as nbgrader itself reads it."""
    from traitlets.config.loader import PyFileConfigLoader

    return PyFileConfigLoader(CONFIG_FILE, path=str(root)).load_config()


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
