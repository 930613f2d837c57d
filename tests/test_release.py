"""`course release`: every committed release is generated, right, and free of hidden tests."""

import shutil

import nbformat
import pytest
from conftest import ROOT, run

from autograders.course import Course
from autograders.release import _differences, leaks, secret_lines, unknown_rules, verify


@pytest.mark.pipeline
def test_every_committed_release_passes_the_checks(pool, capsys):
    """`course release --check`, run in this process on the shared pool."""
    from autograders.cli import cmd_release

    assert cmd_release(Course(ROOT), [], check=True, pool=pool) == 0, capsys.readouterr().out
    out = capsys.readouterr().out
    for exercise in sorted(p.name for p in (ROOT / "solutions").iterdir() if p.is_dir()):
        assert f"{exercise}: release ok" in out


def test_hidden_tests_are_found_in_the_source():
    secrets = secret_lines(ROOT / "solutions" / "ex01" / "ex01.ipynb")
    assert any("manual_seed" in line for line, kind in secrets.items() if kind == "hidden test")
    assert any("grad_v" in line for line, kind in secrets.items() if kind == "solution")


def test_a_leaked_hidden_test_line_is_reported(tmp_path):
    source = ROOT / "solutions" / "ex01" / "ex01.ipynb"
    release = shutil.copytree(ROOT / "exercises" / "ex01", tmp_path / "ex01")
    assert leaks(source, release) == []
    hidden = next(line for line, kind in secret_lines(source).items() if kind == "hidden test")
    nb = nbformat.read(release / "ex01.ipynb", as_version=4)
    nb.cells[-1].source += f"\n\n{hidden}"  # a hint that quotes the hidden test
    nbformat.write(nb, release / "ex01.ipynb")
    (release / "notes.txt").write_text("### BEGIN HIDDEN TESTS\n")
    found = "\n".join(leaks(source, release))
    assert f"hidden test line leaked: {hidden}" in found
    assert "notes.txt: marker 'BEGIN HIDDEN TESTS' left in" in found


def test_a_hand_edited_release_is_reported(tmp_path):
    release = shutil.copytree(ROOT / "exercises" / "ex01", tmp_path / "ex01")
    assert _differences(ROOT / "exercises" / "ex01", release) == []
    text = (release / "ex01.ipynb").read_text().replace("10 points", "12 points")
    (release / "ex01.ipynb").write_text(text)
    (release / "extra.py").write_text("")
    assert _differences(ROOT / "exercises" / "ex01", release) == [
        "extra.py: not generated from solutions/",
        "ex01.ipynb: differs",
    ]


@pytest.mark.pipeline
def test_a_broken_solution_and_a_test_that_passes_blank_are_reported(course_copy, pool):
    source = course_copy / "solutions" / "ex01" / "ex01.ipynb"
    nb = nbformat.read(source, as_version=4)
    shared = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "shared")
    shared.source = shared.source.replace("grad_x = grad_u * w", "grad_x = 2 * grad_u * w")
    free = nbformat.v4.new_code_cell("assert True  # passes whatever the student does")
    free.metadata["nbgrader"] = {"grade": True, "solution": False, "locked": True, "points": 1,
                                 "grade_id": "test_free_point", "schema_version": 3, "task": False}
    nb.cells.append(free)
    nbformat.write(nb, source)
    shutil.rmtree(course_copy / "exercises" / "ex01")
    course = Course(course_copy)
    course.generate_release("ex01")  # regenerate, so only the two planted faults remain
    problems = "\n".join(verify(course, "ex01", pool))
    assert "the solution scores 0/3 on test_shared_backward" in problems
    assert "exactly 2x" in problems
    assert "the blank release scores 1/1 on test_free_point" in problems


def test_a_rule_the_grader_does_not_know_is_reported(course_copy):
    source = course_copy / "solutions" / "ex01" / "ex01.ipynb"
    nb = nbformat.read(source, as_version=4)
    test = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "test_neuron_backward")
    test.metadata["course"] = {"rules": [{"rule": "no-numpy", "in": ["neuron_backward"]}, {"rule": "no-autograd"}]}
    nbformat.write(nb, source)
    found = "\n".join(unknown_rules(Course(course_copy).exercise("ex01")))
    assert "unknown rule 'no-numpy'" in found and "without naming the code" in found


@pytest.mark.pipeline
def test_release_of_an_unknown_exercise_says_which_exist(course_copy):
    result = run(["course", "release", "ex99"], cwd=course_copy)
    assert result.returncode == 2
    assert "no exercise 'ex99'" in result.stderr and "ex01" in result.stderr
