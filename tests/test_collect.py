"""autograders.collect: whose notebook is whose, as learning platforms name them."""

import os

import pytest

from autograders.collect import collect, student_id


@pytest.mark.parametrize(
    "relative, student",
    [
        ("alice.ipynb", "alice"),
        ("alice/ex01.ipynb", "alice"),
        ("alice/submission/Copy of ex01.ipynb", "alice"),
        ("Copy of ex01 (bob).ipynb", "bob"),
        ("ex01 (Bob Smith).ipynb", "Bob_Smith"),
        ("carol_ex01.ipynb", "carol"),
        ("ex01-dave.ipynb", "dave"),
        ("EX01 erin.ipynb", "erin"),
        ("Copy of frank.ipynb", "frank"),
        ("grace (1).ipynb", "grace"),
        # the platforms' own download names: their student part wins over a name the student typed
        ("liddellalice_1001_55123_ex01.ipynb", "liddellalice"),
        ("danverscarol_LATE_1003_55125_Copy of ex01.ipynb", "danverscarol"),
        ("meyermallory_1011_55130_ex01 (alice).ipynb", "meyermallory"),
        ("Alice Liddell_12345_assignsubmission_file_/ex01.ipynb", "Alice_Liddell"),
        ("Alice Liddell_12345_assignsubmission_file_ex01 (bob).ipynb", "Alice_Liddell"),
        ("ex01.ipynb", None),
        ("ex01 (1).ipynb", None),
        ("Copy of ex01.ipynb", None),
    ],
)
def test_student_id(tmp_path, relative, student):
    assert student_id(tmp_path / relative, tmp_path, "ex01") == student


def touch(path, mtime=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("{}")
    if mtime is not None:
        os.utime(path, (mtime, mtime))


def test_collect_keeps_the_newest_and_says_why(tmp_path):
    touch(tmp_path / "alice" / "ex01.ipynb", mtime=1000)
    touch(tmp_path / "alice" / "ex01 (1).ipynb", mtime=2000)
    touch(tmp_path / "Copy of ex01 (bob).ipynb")
    touch(tmp_path / "ex01.ipynb")
    touch(tmp_path / "notes.txt")
    touch(tmp_path / "alice" / ".ipynb_checkpoints" / "ex01-checkpoint.ipynb")
    found = collect(tmp_path, "ex01")
    assert found.submissions == {"alice": tmp_path / "alice" / "ex01 (1).ipynb", "bob": tmp_path / "Copy of ex01 (bob).ipynb"}
    problems = "\n".join(found.problems)
    assert "alice handed in 2 notebooks; graded the newest" in problems
    assert "ex01.ipynb: cannot tell whose notebook this is" in problems
    assert "notes.txt: not a notebook, skipped" in problems
    assert "checkpoint" not in problems


def test_a_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no folder of submissions"):
        collect(tmp_path / "nowhere", "ex01")
