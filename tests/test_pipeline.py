"""The instructor pipeline end to end: grade a class folder, write feedback, export grades."""

import csv
import json
import shutil

import nbformat
import pytest
from nbgrader.api import Gradebook

from conftest import ROOT, copy_course, run

SAMPLES = ROOT / "autograders" / "samples" / "ex01"

# Every sample's score out of 10, and words its reason must contain.
EXPECTED = {
    "alice": (10, "all tests passed"),  # correct
    "bob": (3, "exactly 2x"),  # gradients twice too large
    "carol": (6, "sign is flipped"),  # sign error
    "dave": (4, "NameError"),  # the answer cell raises
    "erin": (7, "time limit"),  # infinite loop, cut by the per-cell timeout
    "frank": (0, "not answered"),  # the blank release
    "mallory": (0, "not a valid Jupyter notebook"),  # a broken file
    "grace": (10, "restored and scored"),  # a correct answer whose last test cell was deleted: put back, scored
}


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    course = copy_course(tmp_path_factory.mktemp("pipeline") / "course")
    inbox = shutil.copytree(SAMPLES, course / "inbox")
    (inbox / "mallory.ipynb").write_text('{"cells": [ this is not JSON')
    shutil.copy(SAMPLES / "frank.ipynb", inbox / "ex01.ipynb")  # nobody's name on it
    notebook = nbformat.read(SAMPLES / "alice" / "ex01.ipynb", as_version=4)
    notebook.cells = [c for c in notebook.cells if c.metadata.get("nbgrader", {}).get("grade_id") != "test_shared_backward"]
    nbformat.write(notebook, inbox / "grace.ipynb")
    result = run(["course", "grade", "ex01", "inbox"], cwd=course)
    assert result.returncode == 0, result.stdout + result.stderr
    return course, result.stdout


def results(course):
    return {p.stem: json.loads(p.read_text()) for p in (course / "coursework" / "results" / "ex01").glob("*.json")}


def test_every_sample_gets_its_expected_score_and_reason(graded):
    course, _ = graded
    found = results(course)
    assert set(found) == set(EXPECTED)
    for student, (score, words) in EXPECTED.items():
        assert found[student]["score"] == score, (student, found[student])
        assert found[student]["max_score"] == 10
        assert words in found[student]["reason"], (student, found[student]["reason"])


def test_the_gradebook_holds_the_same_scores(graded):
    course, _ = graded
    with Gradebook(f"sqlite:///{course / 'coursework' / 'gradebook.db'}") as gradebook:
        for student, (score, _) in EXPECTED.items():
            if student != "mallory":  # never handed in a readable notebook
                assert gradebook.find_submission("ex01", student).score == score


def test_the_table_shows_every_student_and_what_was_not_graded(graded):
    _, out = graded
    for student, (score, _) in EXPECTED.items():
        assert any(line.startswith(student) and f"{score}/10" in line for line in out.splitlines()), student
    assert "ex01.ipynb: cannot tell whose notebook this is" in out
    assert f"{len(EXPECTED)} graded" in out


def test_feedback_shows_results_and_messages_but_not_hidden_tests(graded):
    course, _ = graded
    result = run(["course", "feedback", "ex01"], cwd=course)
    assert result.returncode == 0, result.stdout + result.stderr
    pages = {p.parts[-3]: p.read_text() for p in (course / "coursework" / "feedback").glob("*/ex01/ex01.html")}
    assert set(pages) == set(EXPECTED) - {"mallory"}
    assert "exactly 2x" in pages["bob"]
    for page in pages.values():
        assert "manual_seed(2026" not in page and "BEGIN HIDDEN TESTS" not in page


def test_export_writes_one_row_per_student(graded):
    course, _ = graded
    result = run(["course", "export"], cwd=course)
    assert result.returncode == 0, result.stdout + result.stderr
    rows = {row["student_id"]: float(row["score"]) for row in csv.DictReader((course / "coursework" / "grades.csv").open())}
    assert rows == {student: float(score) for student, (score, _) in EXPECTED.items()}


def test_a_missing_folder_is_a_clear_message(graded):
    course, _ = graded
    result = run(["course", "grade", "ex01", "no-such-folder"], cwd=course)
    assert result.returncode == 2 and "no folder of submissions" in result.stderr


def test_stock_nbgrader_commands_work_from_the_root(course_copy):
    generated = run(["nbgrader", "generate_assignment", "ex01", "--force"], cwd=course_copy, activated=True)
    assert generated.returncode == 0, generated.stderr
    assert (course_copy / "exercises" / "ex01" / "ex01.ipynb").read_bytes() == (ROOT / "exercises" / "ex01" / "ex01.ipynb").read_bytes()
    submitted = course_copy / "coursework" / "submitted" / "alice" / "ex01"
    submitted.mkdir(parents=True)
    shutil.copy(SAMPLES / "alice" / "ex01.ipynb", submitted / "ex01.ipynb")
    graded = run(["nbgrader", "autograde", "ex01"], cwd=course_copy, activated=True)
    assert graded.returncode == 0, graded.stderr
    with Gradebook(f"sqlite:///{course_copy / 'coursework' / 'gradebook.db'}") as gradebook:
        assert gradebook.find_submission("ex01", "alice").score == 10
