"""`course publish DIR`: the student edition, the tree students get, and nothing else.

    lectures/            executed, with their outputs
    exercises/           the released exercises (no solution, no hidden test)
    utils/               the helpers the notebooks import (the student package)
    benchmarks/          what a lecture points to (mnist_epoch.py and its results)
    site/                the course website, when `make site` has built it
    README.md, pyproject.toml, environment.yml, LICENSE    for students

Never solutions/, autograders/ (the samples with it), tests/, the course work folder. Writing into an
existing clone of the public repository updates it in place: stale files go, .git stays, and running
it twice changes nothing. Before anything is written, every file is searched for the lines of the
solutions, the hidden tests and the sample submissions' answers: one found stops the publication.
"""

from __future__ import annotations

import filecmp
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
import tomllib

from autograders.course import Course, CourseError

TEMPLATES = Path(__file__).resolve().parent / "templates"
SAMPLES = Path(__file__).resolve().parent / "samples"
KEEP = {".git"}  # what an existing clone holds that publishing never touches
LECTURE_POINTS_TO = ["benchmarks/mnist_epoch.py", "benchmarks/RESULTS.md"]
_BLOCK = re.compile(r"### BEGIN (HIDDEN TESTS|SOLUTION)\n(.*?)### END \1", re.DOTALL)


@dataclass
class Published:
    """What a publication did."""

    written: list[str] = field(default_factory=list)  # new or changed files, relative to the tree
    removed: list[str] = field(default_factory=list)  # stale files taken away
    files: int = 0  # files in the tree


# ---------------------------------------------------------------- what must never be published


DISTINCT = 24  # characters: a shorter line ("order, seen = [], set()") is a commonplace, not a secret


def public_material(course: Course) -> str:
    """What students get by design, each checked on its own: the lectures, and every release (which `course
    release` proves free of its own solution and hidden tests)."""
    paths = sorted((course.root / "lectures").glob("*.ipynb")) + sorted((course.root / "exercises").glob("*/*.ipynb"))
    return "\n".join(_text(p) for p in paths)


def secret_lines(course: Course) -> dict[str, str]:
    """Every line a student must not get, with where it comes from: the solutions, the hidden tests and the
    answers of the sample submissions, less what the lectures and releases show anyway (a lecture's own
    least-squares residual is no secret), and less commonplaces shorter than DISTINCT characters."""
    public = public_material(course)
    secrets: dict[str, str] = {}

    def add(line: str, kind: str) -> None:
        line = line.strip()
        if len(line) >= DISTINCT and line not in public:
            secrets.setdefault(line, kind)

    for name in course.exercise_names():
        for cell in course.exercise(name).notebook.cells:
            for kind, block in _BLOCK.findall(cell.source):
                for line in block.splitlines():
                    add(line, f"{name} {'hidden test' if kind == 'HIDDEN TESTS' else 'solution'}")
        samples = SAMPLES / name
        for sample in sorted(samples.rglob("*.ipynb")) if samples.is_dir() else []:
            for cell in nbformat.read(sample, as_version=4).cells:
                if cell.cell_type == "code" and not cell.get("metadata", {}).get("nbgrader", {}).get("locked", False):
                    for line in cell.source.splitlines():
                        add(line, f"{name} sample answer ({sample.name})")
    return secrets


def _text(path: Path) -> str:
    data = path.read_bytes()
    if path.suffix == ".ipynb":  # the cells as a student sees them, not escaped JSON
        notebook = nbformat.reads(data.decode(), as_version=4)
        return "\n".join(c.source + "\n" + "\n".join(str(o) for o in c.get("outputs", [])) for c in notebook.cells)
    return data.decode("utf-8", "replace")


def leaks(tree: Path, secrets: dict[str, str]) -> list[str]:
    """Each secret line found in a file under `tree`."""
    found = []
    for path in sorted(p for p in tree.rglob("*") if p.is_file() and ".git" not in p.relative_to(tree).parts):
        text = _text(path)
        found += [f"{path.relative_to(tree)}: {kind} line: {line}" for line, kind in secrets.items() if line in text]
    return found


# ---------------------------------------------------------------- the tree


def student_pyproject(course: Course) -> str:
    """The student package: the helpers only, with the course's own (slim) dependencies."""
    project = tomllib.loads((course.root / "pyproject.toml").read_text())["project"]
    dependencies = "".join(f'    "{d}",\n' for d in project["dependencies"])
    return f'''[build-system]
requires = ["setuptools>=64"]
build-backend = "setuptools.build_meta"

[project]
name = "{project["name"]}"
version = "{project["version"]}"
description = "A course on automatic differentiation with PyTorch, student edition: the helpers its notebooks import."
readme = "README.md"
requires-python = "{project["requires-python"]}"
license = {{ text = "{project["license"]["text"]}" }}
dependencies = [
{dependencies}]

[project.urls]
Repository = "{course.public.url}"

[tool.setuptools]
packages = ["utils"]
'''


def student_environment(course: Course) -> str:
    project = tomllib.loads((course.root / "pyproject.toml").read_text())["project"]
    pip = "".join(f"      - {d}\n" for d in project["dependencies"])
    return f"""# conda env create -f environment.yml && conda activate autodiff-course
name: autodiff-course
channels:
  - conda-forge
dependencies:
  - python=3.11
  - pip
  - graphviz          # the `dot` program that draws computation graphs
  - jupyterlab
  - pip:
{pip}      - -e .
"""


def _table(rows: list[tuple[str, str]]) -> str:
    return "\n".join(f"| {a} | {b} |" for a, b in rows)


def student_readme(course: Course) -> str:
    lectures = []
    for path in sorted((course.root / "lectures").glob("*.ipynb")):
        title = nbformat.read(path, as_version=4).cells[0].source.splitlines()[0].lstrip("# ").strip()
        lectures.append((f"[{title}]({course.public.colab('lectures/' + path.name)})", f"`lectures/{path.name}`"))
    exercises = []
    for name in course.exercise_names():
        release = course.release_folder(name) / course.exercise(name).source.name
        title = nbformat.read(release, as_version=4).cells[0].source.splitlines()[0].lstrip("# ").strip()
        points = f"{course.exercise(name).max_score:g} points"
        exercises.append((f"[{title}]({course.public.colab(f'exercises/{name}/{release.name}')}) ({points})",
                          f"`exercises/{name}/{release.name}`"))
    template = (TEMPLATES / "student-README.md").read_text()
    return template.format(
        repository=course.public.repository, repository_name=course.public.repository.split("/")[-1],
        url=course.public.url, branch=course.public.branch, pip=course.public.pip,
        lectures=_table(lectures), exercises=_table(exercises),
        ex01_colab=course.public.colab(f"exercises/ex01/{course.exercise('ex01').source.name}"),
    )


def build(course: Course, staging: Path) -> None:
    """Write the student edition into the empty folder `staging`."""
    shutil.copytree(course.root / "lectures", staging / "lectures", ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    for name in course.exercise_names():
        shutil.copytree(course.release_folder(name), staging / "exercises" / name,
                        ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    shutil.copytree(course.root / "utils", staging / "utils", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for relative in LECTURE_POINTS_TO:
        (staging / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(course.root / relative, staging / relative)
    site = course.root / "site"
    if (site / "index.html").is_file():
        shutil.copytree(site, staging / "site")
    (staging / "README.md").write_text(student_readme(course))
    (staging / "pyproject.toml").write_text(student_pyproject(course))
    (staging / "environment.yml").write_text(student_environment(course))
    shutil.copy(course.root / "LICENSE", staging / "LICENSE")
    (staging / ".gitignore").write_text("__pycache__/\n*.egg-info/\n.ipynb_checkpoints/\n/data/\n")


def _sync(staging: Path, target: Path) -> Published:
    """Make `target` hold exactly what `staging` holds (its .git aside); touch only what differs."""
    report = Published()
    target.mkdir(parents=True, exist_ok=True)
    wanted = {p.relative_to(staging) for p in staging.rglob("*") if p.is_file()}
    for path in sorted(target.rglob("*"), reverse=True):
        relative = path.relative_to(target)
        if relative.parts[0] in KEEP:
            continue
        if path.is_file() and relative not in wanted:
            path.unlink()
            report.removed.append(str(relative))
        elif path.is_dir() and not any(path.iterdir()):
            path.rmdir()
    for relative in sorted(wanted):
        source, destination = staging / relative, target / relative
        if destination.is_file() and filecmp.cmp(source, destination, shallow=False):
            continue
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, destination)
        report.written.append(str(relative))
    report.files = len(wanted)
    return report


def publish(course: Course, target: Path) -> Published:
    """Write (or update) the student edition in `target`; refuse if any secret would go with it."""
    target = Path(target).resolve()
    if target == course.root or course.root.is_relative_to(target) or target.is_relative_to(course.root / "solutions"):
        raise CourseError(f"publish into a folder of its own (a clone of {course.public.url}), not into the course itself")
    with tempfile.TemporaryDirectory(prefix="course-publish-") as tmp:
        staging = Path(tmp) / "edition"
        build(course, staging)
        found = leaks(staging, secret_lines(course))
        if found:
            raise CourseError("nothing was published: these lines must not reach students:\n  " + "\n  ".join(found[:20]))
        return _sync(staging, target)
