"""Shared fixtures: a throw-away copy of the course (tests never touch the real coursework/), one pool of warm
grading sandboxes for the whole session, and the markers that let `make test-fast` leave the slow parts out.

Markers (pyproject.toml): `lecture` (every lecture under nbval: added here to each notebook item) and
`pipeline` (tests that grade in sandboxes or run the `course` command).
"""

import contextlib
import fcntl
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# The lectures' stored outputs were made with two CPU threads; float32 training results (lecture 06's
# accuracies) can change in the last digit with another thread count. Kernels inherit this.
os.environ.setdefault("OMP_NUM_THREADS", "2")
# Two test processes share the cores (make test runs pytest -n 2). OpenMP threads that spin while they wait
# hold a core the other process needs: a lecture's big matrix products took 3-4x longer beside another
# test than alone. Waiting threads that sleep instead change no result (the same threads split the same work).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
BIN = Path(sys.executable).parent  # the environment's console commands: course, nbgrader
TIMEOUT = 5  # seconds per cell in the copies that grade ex01's endless loops: every honest ex01 cell takes well under 1 s


def copy_course(target: Path, cell_timeout: int | None = None) -> Path:
    """The parts of the course that grading needs: config, sources, releases (and a shorter time limit)."""
    target.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "nbgrader_config.py", target)
    if cell_timeout is not None:  # tests that wait for infinite loops need not wait 30 s
        with (target / "nbgrader_config.py").open("a") as config:
            config.write(f"\nc.Execute.timeout = {cell_timeout}\n")
    shutil.copytree(ROOT / "solutions", target / "solutions")
    shutil.copytree(ROOT / "exercises", target / "exercises")
    return target


def run(command: list, cwd: Path, activated: bool = False, timeout: int = 600) -> subprocess.CompletedProcess:
    """Run a console command of this environment, as an instructor would type it.

    By default PATH is left as it is, as when `make` calls .venv/bin/course; `activated` puts the
    environment's scripts first, as `source .venv/bin/activate` does (stock nbgrader needs that).
    """
    env = dict(os.environ)
    if activated:
        env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    return subprocess.run(
        [str(BIN / command[0]), *map(str, command[1:])], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


def course_in_process(arguments: list, cwd: Path) -> subprocess.CompletedProcess:
    """`course ARGUMENTS` typed in `cwd`, run by its main() in this process: as `run` reports it, and fast, for the
    commands that start no sandbox (report, export, score, similar)."""
    from autograders.cli import main

    out, err = io.StringIO(), io.StringIO()
    previous = os.getcwd()
    os.chdir(cwd)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main([str(a) for a in arguments])
            except SystemExit as stopped:  # argparse's own errors
                code = stopped.code
    finally:
        os.chdir(previous)
    return subprocess.CompletedProcess(arguments, code, out.getvalue(), err.getvalue())


@pytest.fixture
def course_copy(tmp_path):
    return copy_course(tmp_path / "course")


@pytest.fixture(scope="session")
def pool():
    """Warm grading sandboxes, booted once and shared by every test that grades in this process."""
    from autograders.pool import Pool

    with Pool() as shared:
        yield shared


EX01_SAMPLES = ROOT / "autograders" / "samples" / "ex01"


@pytest.fixture(scope="session")
def ex01_class(tmp_path_factory):
    """Exercise 01's sample class, graded once per session with `course grade`, as an instructor types it.

    Beside the samples: a broken file (mallory), a correct answer whose last test cell was deleted (grace),
    and a notebook with nobody's name on it. Returns the course folder and what the command printed.
    """
    import nbformat

    course = copy_course(tmp_path_factory.mktemp("ex01-class") / "course", cell_timeout=TIMEOUT)
    inbox = shutil.copytree(EX01_SAMPLES, course / "inbox")
    (inbox / "mallory.ipynb").write_text('{"cells": [ this is not JSON')
    shutil.copy(EX01_SAMPLES / "frank.ipynb", inbox / "ex01.ipynb")  # nobody's name on it
    notebook = nbformat.read(EX01_SAMPLES / "alice" / "ex01.ipynb", as_version=4)
    notebook.cells = [c for c in notebook.cells if c.metadata.get("nbgrader", {}).get("grade_id") != "test_shared_backward"]
    nbformat.write(notebook, inbox / "grace.ipynb")
    result = run(["course", "grade", "ex01", "inbox"], cwd=course)
    assert result.returncode == 0, result.stdout + result.stderr
    return course, result.stdout


def results_of(course: Path, exercise: str = "ex01") -> dict:
    """The results JSON of every graded student, as dicts."""
    folder = course / "coursework" / "results" / exercise
    return {p.stem: json.loads(p.read_text()) for p in folder.glob("*.json")}


def grade_in_process(course_root: Path, exercise: str, folder: Path, pool, **options):
    """Grade a folder of submissions with the course's own pipeline, in this process, on the shared pool."""
    from autograders.collect import collect
    from autograders.course import Course
    from autograders.pipeline import grade

    return {r.student: r for r in grade(Course(course_root), exercise, collect(folder, exercise).submissions, pool, **options)}


# ---- MNIST for the lectures: seed the data root from CI's shared copy, skip lecture 06 without it ----
# Runs at import, so the nbval kernels (which read the same COURSE_DATA_ROOT) find full MNIST and
# torchvision only unpacks it. Where the shared copy is absent, nothing happens: torchvision downloads.
from utils.settings import DATA_ROOT  # noqa: E402

SHARED_MNIST = ROOT.parent / "shared" / "data" / "mnist"
MNIST_LECTURE = "06_mnist_gpu.ipynb"


@contextlib.contextmanager
def data_root_lock():
    """One test process at a time seeds and unpacks MNIST (pytest-xdist runs several)."""
    DATA_ROOT.mkdir(parents=True, exist_ok=True)
    with open(DATA_ROOT / ".course-tests.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


if SHARED_MNIST.is_dir():
    from torchvision.datasets import MNIST
    from torchvision.datasets.utils import check_integrity

    _raw = DATA_ROOT / "MNIST" / "raw"
    with data_root_lock():
        for _name, _md5 in MNIST.resources:
            if not check_integrity(str(_raw / _name), _md5) and check_integrity(str(SHARED_MNIST / _name), _md5):
                _raw.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(SHARED_MNIST / _name, _raw / _name)  # copyfile: the copy stays writable


@pytest.hookimpl(tryfirst=True)  # before -m deselects by marker
def pytest_collection_modifyitems(config, items):
    """Mark every lecture cell `lecture`, and skip lecture 06's cells when full MNIST can be neither found nor
    downloaded (an offline fresh machine).

    Here, not in pytest_itemcollected: a conftest's collection hooks see only the items under its own folder,
    and the lectures are not under tests/. (With pytest-xdist's --dist loadfile a notebook's cells run in order
    in one process, as do the tests of one file: all that read ex01's class are in test_pipeline.py.)
    """
    for item in items:
        if item.path.suffix == ".ipynb":
            item.add_marker(pytest.mark.lecture)
    lecture = [item for item in items if item.path.name == MNIST_LECTURE]
    if not lecture:
        return
    from utils.data import download_mnist

    with data_root_lock():
        found = download_mnist(DATA_ROOT)
    if found:
        return
    skip = pytest.mark.skip(
        reason=f"full MNIST is not in {DATA_ROOT / 'MNIST' / 'raw'} and could not be downloaded; its stored "
        "outputs are for full MNIST (tests/test_lecture06_offline.py runs the lecture on the offline sample)"
    )
    for item in lecture:
        item.add_marker(skip)
# ---- end of MNIST block ----
