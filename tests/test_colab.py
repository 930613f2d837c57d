"""Colab, simulated: a Python environment with only what Colab brings, the student package installed from the
published tree, and a lecture and an exercise run alone in an empty folder, as a student opens them.

Colab's packages are taken from this test environment (linked, not copied: torch is gigabytes), each with
everything it needs, and nothing else: no nbgrader, jupyterlab, distributed or mlxtend. The install then
resolves like the setup cell's own `pip install "autodiff-course @ git+..."`, against the published tree
instead of the public repository (the tests have no network to GitHub).
"""

import json
import os
import re
import shutil
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

import nbformat
import pytest
from conftest import ROOT

from autograders.course import Course
from autograders.publish import publish

pytestmark = pytest.mark.colab

COLAB = ["torch", "torchvision", "matplotlib", "numpy", "tqdm", "ipykernel", "nbclient", "scikit-learn"]
INSTRUCTOR = {"nbgrader", "jupyterlab", "notebook", "jupyter-server", "distributed", "dask", "mlxtend", "nbval", "pytest"}


def _name(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def closure(names: list[str]) -> dict[str, metadata.Distribution]:
    """The distributions `names` need on this machine, transitively, with the extras they ask of each other."""
    from packaging.requirements import Requirement

    found: dict[str, metadata.Distribution] = {}
    todo = [(_name(n), frozenset()) for n in names]
    done = set()
    while todo:
        name, extras = todo.pop()
        if (name, extras) in done:
            continue
        done.add((name, extras))
        try:
            dist = found.setdefault(name, metadata.distribution(name))
        except metadata.PackageNotFoundError:
            continue
        for text in dist.requires or []:
            requirement = Requirement(text)
            wanted = requirement.marker is None or any(
                requirement.marker.evaluate({"extra": extra}) for extra in (extras or {""}))
            if wanted:
                todo.append((_name(requirement.name), frozenset(requirement.extras)))
    return found


def link_colab_packages(site: Path) -> set[str]:
    """Link Colab's packages (and what they need) from this environment into `site`; return their names."""
    dists = closure(COLAB)
    for dist in dists.values():
        for top in {Path(str(f)).parts[0] for f in dist.files or []}:
            source = Path(dist.locate_file(top))
            if source.exists() and not (site / top).exists() and top not in ("..", "bin", "__pycache__"):
                (site / top).symlink_to(source)
    return set(dists)


@pytest.fixture(scope="module")
def colab(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("colab")
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = Path(subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    linked = link_colab_packages(site)
    assert not linked & INSTRUCTOR, linked & INSTRUCTOR
    edition = tmp / "autodiff-course-student"
    publish(Course(ROOT), edition)
    report = tmp / "report.json"
    dry = subprocess.run([python, "-m", "pip", "install", "--dry-run", "--quiet", "--report", str(report), str(edition)],
                         capture_output=True, text=True)
    assert dry.returncode == 0, dry.stderr
    started = time.monotonic()
    install = subprocess.run([python, "-m", "pip", "install", "--quiet", str(edition)], capture_output=True, text=True)
    seconds = time.monotonic() - started
    assert install.returncode == 0, install.stderr
    return {"python": python, "report": json.loads(report.read_text()), "seconds": seconds, "install": install,
            "edition": edition, "tmp": tmp}


def run_alone(colab, notebook: Path, allow_errors: bool = False, dot: bool = True) -> nbformat.NotebookNode:
    """Run a notebook alone in an empty folder, with the Colab-like Python as its kernel."""
    folder = colab["tmp"] / f"alone-{notebook.stem}-{allow_errors}"
    folder.mkdir()
    shutil.copy(notebook, folder / notebook.name)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PATH"] = f"{colab['python'].parent}{os.pathsep}{env['PATH']}" if dot else str(colab["python"].parent)
    script = (
        "import sys, nbformat; from nbclient import NotebookClient\n"
        "nb = nbformat.read(sys.argv[1], as_version=4)\n"
        f"NotebookClient(nb, timeout=600, kernel_name='python3', allow_errors={allow_errors},"
        " resources={'metadata': {'path': sys.argv[2]}}).execute()\n"
        "nbformat.write(nb, sys.argv[1])\n"
    )
    result = subprocess.run([colab["python"], "-c", script, str(folder / notebook.name), str(folder)], env=env,
                            capture_output=True, text=True, timeout=900, cwd=folder)
    assert result.returncode == 0, result.stderr[-3000:]
    return nbformat.read(folder / notebook.name, as_version=4)


def errors(notebook) -> dict[str, str]:
    """grade_id (or cell index) -> the name of the error a cell ended with."""
    found = {}
    for index, cell in enumerate(notebook.cells):
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                found[cell.metadata.get("nbgrader", {}).get("grade_id") or str(index)] = output["ename"]
    return found


def test_the_install_pulls_in_none_of_the_instructor_stack(colab):
    installed = {_name(item["metadata"]["name"]) for item in colab["report"]["install"]}
    assert "autodiff-course" in installed
    assert not installed & INSTRUCTOR, installed & INSTRUCTOR
    assert installed <= {"autodiff-course", "torchviz", "graphviz"}, installed  # Colab has the rest
    assert "ERROR" not in colab["install"].stderr  # no dependency conflict with what Colab brings
    print(f"\nColab-like install of the student package: {colab['seconds']:.1f} s, adding {sorted(installed)}")


def test_a_lecture_runs_alone_top_to_bottom_even_without_graphviz(colab):
    notebook = run_alone(colab, colab["edition"] / "lectures" / "01_computation_graphs.ipynb", dot=False)
    assert errors(notebook) == {}
    text = "\n".join(str(o) for c in notebook.cells for o in c.get("outputs", []))
    assert "digraph" in text  # the graphs, as text: no `dot` on the path


def test_the_blank_exercise_fails_its_visible_tests_with_their_messages(colab):
    notebook = run_alone(colab, colab["edition"] / "exercises" / "ex01" / "ex01.ipynb", allow_errors=True)
    found = errors(notebook)
    tests = [c.metadata["nbgrader"]["grade_id"] for c in notebook.cells if c.metadata.get("nbgrader", {}).get("grade")]
    assert set(tests) <= set(found) and found.get("setup") is None, found
    assert set(found.values()) <= {"NotImplementedError", "AssertionError"}, found  # not an ImportError


def test_the_solved_exercise_passes(colab):
    solved = colab["tmp"] / "ex01.ipynb"
    shutil.copy(ROOT / "autograders" / "samples" / "ex01" / "alice" / "ex01.ipynb", solved)
    assert errors(run_alone(colab, solved)) == {}
