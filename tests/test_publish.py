"""`course publish DIR`: the student edition holds what students need and no solution, hidden test or sample
answer, in its files or in the package built from it; it updates a clone in place and twice changes nothing."""

import shutil
import subprocess
import sys
import zipfile

import nbformat
import pytest
from conftest import ROOT

from autograders.course import Course, CourseError
from autograders.publish import publish
from autograders.release import secret_lines

COURSE = Course(ROOT)


def readable(path) -> str:
    """A file's text as a person reads it: a notebook's cells and outputs, not its escaped JSON."""
    text = path.read_bytes().decode("utf-8", "replace")
    if path.suffix == ".ipynb":
        cells = nbformat.reads(text, as_version=4).cells
        text += "\n".join(c.source + "\n" + "\n".join(str(o) for o in c.get("outputs", [])) for c in cells)
    return text


def public() -> str:
    """The repository's own lectures and releases: what students have by design."""
    return "\n".join(readable(p) for p in sorted(ROOT.glob("lectures/*.ipynb")) + sorted(ROOT.glob("exercises/*/*.ipynb")))


def secrets() -> dict[str, str]:
    """Solution and hidden-test lines of every exercise, and the answers in every sample submission, less what
    the lectures, releases and helpers show anyway: found here on their own, not with the publisher's search."""
    found = {}
    for name in COURSE.exercise_names():
        found.update(secret_lines(COURSE.exercise(name).source))
        for sample in (ROOT / "autograders" / "samples" / name).rglob("*.ipynb"):
            for cell in nbformat.read(sample, as_version=4).cells:
                if cell.cell_type == "code" and not cell.metadata.get("nbgrader", {}).get("locked"):
                    found.update({line.strip(): "sample" for line in cell.source.splitlines() if len(line.strip()) >= 16})
    shown = public()
    return {line: kind for line, kind in found.items() if line not in shown and len(line) >= 24}


def texts(folder):
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and ".git" not in p.parts):
        yield path, readable(path)


@pytest.fixture(scope="module")
def edition(tmp_path_factory):
    target = tmp_path_factory.mktemp("public") / "autodiff-course-student"
    report = publish(COURSE, target)
    return target, report


def test_the_edition_holds_what_students_need_and_nothing_of_the_instructors(edition):
    target, report = edition
    files = {str(p.relative_to(target)) for p in target.rglob("*") if p.is_file()}
    assert report.files == len(files) and report.written and not report.removed
    assert {f"lectures/{p.name}" for p in (ROOT / "lectures").glob("*.ipynb")} <= files
    assert {f"exercises/{n}/{n}.ipynb" for n in COURSE.exercise_names()} <= files
    assert {"README.md", "pyproject.toml", "environment.yml", "LICENSE", "utils/checks.py", "benchmarks/mnist_epoch.py"} <= files
    for forbidden in ("solutions/", "autograders/", "tests/", "coursework/", "nbgrader_config.py", "Makefile"):
        assert not any(f.startswith(forbidden) for f in files), forbidden


def test_no_solution_hidden_test_or_sample_answer_is_published(edition):
    target, _ = edition
    lines = secrets()
    assert len(lines) > 200
    for path, text in texts(target):
        assert [line for line in lines if line in text] == [], path


def test_nor_in_the_package_built_from_it(edition, tmp_path):
    target, _ = edition
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                            str(tmp_path), str(target)], capture_output=True, text=True)
    assert built.returncode == 0, built.stderr
    (wheel,) = tmp_path.glob("autodiff_course-*.whl")
    lines = secrets()
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        assert any(n == "utils/checks.py" for n in names) and not any(n.startswith("autograders/") for n in names)
        for name in names:
            text = archive.read(name).decode("utf-8", "replace")
            assert [line for line in lines if line in text] == [], name
    shutil.rmtree(target / "build", ignore_errors=True)
    for egg in target.glob("*.egg-info"):
        shutil.rmtree(egg)


def test_the_student_package_needs_none_of_the_instructor_stack(edition):
    import tomllib

    project = tomllib.loads((edition[0] / "pyproject.toml").read_text())["project"]
    names = {d.split(">")[0].split("=")[0].split("<")[0].strip().lower() for d in project["dependencies"]}
    assert names == {"torch", "torchvision", "matplotlib", "torchviz", "tqdm", "scikit-learn"}
    assert COURSE.public.url in (edition[0] / "README.md").read_text()


def test_publishing_again_changes_nothing_and_an_old_clone_is_updated_in_place(edition, tmp_path):
    target, _ = edition
    again = publish(COURSE, target)
    assert again.written == [] and again.removed == []
    clone = shutil.copytree(target, tmp_path / "clone")
    (clone / ".git").mkdir()
    (clone / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (clone / "lectures" / "08_removed_lecture.ipynb").write_text("{}")
    (clone / "README.md").write_text("an old README")
    update = publish(COURSE, clone)
    assert update.removed == ["lectures/08_removed_lecture.ipynb"] and update.written == ["README.md"]
    assert (clone / ".git" / "HEAD").read_text() == "ref: refs/heads/main\n"


def test_a_secret_in_any_published_file_stops_the_publication(tmp_path):
    course = tmp_path / "course"
    for item in ("lectures", "solutions", "exercises", "utils", "benchmarks"):
        shutil.copytree(ROOT / item, course / item, ignore=shutil.ignore_patterns("__pycache__"))
    for item in ("nbgrader_config.py", "pyproject.toml", "LICENSE"):
        shutil.copy(ROOT / item, course)
    hidden = next(line for line, kind in secret_lines(ROOT / "solutions" / "ex01" / "ex01.ipynb").items() if kind == "hidden test")
    (course / "utils" / "hint.py").write_text(f"# {hidden}\n")
    with pytest.raises(CourseError, match="nothing was published"):
        publish(Course(course), tmp_path / "out")
    assert not (tmp_path / "out").exists()
