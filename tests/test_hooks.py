"""The course's own pre-commit checks (autograders/hooks.py): each passes on the committed tree and fails,
with a message that says what to do, on the mistake it exists for."""

import shutil
import subprocess
import sys

import nbformat
import pytest
from conftest import ROOT, copy_course

from autograders import hooks

LECTURES = sorted(str(p) for p in (ROOT / "lectures").glob("*.ipynb"))


def test_every_committed_lecture_is_executed_top_to_bottom():
    assert LECTURES and hooks.lectures_executed(LECTURES) == []


@pytest.mark.parametrize("mistake", ["a cell never ran", "run out of order"])
def test_a_lecture_saved_unexecuted_or_out_of_order_is_refused(tmp_path, mistake):
    notebook = nbformat.read(LECTURES[0], as_version=4)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    if mistake == "a cell never ran":
        code[3].execution_count, code[3].outputs = None, []
    else:
        code[1].execution_count, code[2].execution_count = code[2].execution_count, code[1].execution_count
    path = tmp_path / "lecture.ipynb"
    nbformat.write(notebook, path)
    (problem,) = hooks.lectures_executed([str(path)])
    assert "not executed top to bottom" in problem and "Restart Kernel and Run All Cells" in problem
    if mistake == "a cell never ran":
        assert f"(1 of {len(code)} code cells never ran)" in problem


@pytest.mark.pipeline  # generates a release twice
def test_the_hook_command_fails_with_the_fix_when_an_exercise_was_edited_by_hand(tmp_path):
    course = copy_course(tmp_path / "course")
    for other in ("ex01", "ex03", "ex04", "ex05", "ex06"):  # one exercise shows it; each release takes seconds
        shutil.rmtree(course / "solutions" / other)
        shutil.rmtree(course / "exercises" / other)
    shutil.copy(ROOT / "pyproject.toml", course)
    shutil.copytree(ROOT / "lectures", course / "lectures")
    command = [sys.executable, "-m", "autograders.hooks", "exercises-in-sync"]
    assert subprocess.run(command, cwd=course, capture_output=True, text=True).returncode == 0

    release = course / "exercises" / "ex02" / "ex02.ipynb"
    notebook = nbformat.read(release, as_version=4)
    notebook.cells[-1].source += "\n# edited by hand"
    nbformat.write(notebook, release)
    checked = subprocess.run(command, cwd=course, capture_output=True, text=True)
    assert checked.returncode == 1
    assert "ex02: exercises/ex02/ex02.ipynb" in checked.stderr and "fix: `course links`, then `course release`" in checked.stderr


def test_the_hook_command_without_a_check_name_prints_its_usage():
    checked = subprocess.run([sys.executable, "-m", "autograders.hooks"], capture_output=True, text=True)
    assert checked.returncode == 2 and "lectures-executed" in checked.stderr
