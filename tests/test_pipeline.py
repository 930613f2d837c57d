"""The instructor pipeline end to end, as typed: grade a class folder, write feedback, export grades.

Exercise 01's class is graded once per session (conftest.ex01_class); every test that reads that run is
in this file, so that pytest-xdist (--dist loadfile) runs them in one process, which grades it once.
"""

import csv
import shutil

import pytest
from conftest import EX01_SAMPLES, ROOT, TIMEOUT, copy_course, grade_in_process, results_of, run
from nbgrader.api import Gradebook
from test_samples import EXPECTED, assert_expected

from autograders.pool import Pool

pytestmark = pytest.mark.pipeline

SAMPLES = ROOT / "autograders" / "samples" / "ex01"

SCORES = {student: want["score"] for student, want in EXPECTED["ex01"]["students"].items()}
# What the class fixture adds beside the samples (whose scores are in tests/expected/ex01.json).
EXTRA = {
    "mallory": (0, "not a valid Jupyter notebook"),  # a broken file
    "grace": (10, "restored and scored"),  # a correct answer whose last test cell was deleted: put back, scored
}


@pytest.fixture(scope="module")
def graded(ex01_class):
    return ex01_class


def test_ex01_samples_get_their_expected_scores(graded):
    course, _ = graded
    assert_expected("ex01", {s: r for s, r in results_of(course).items() if s in EXPECTED["ex01"]["students"]})


def test_parallel_grading_gives_the_sequential_scores(tmp_path, ex01_class):
    """The session's class was graded with one worker per core; one worker alone gives the same."""
    course = copy_course(tmp_path / "course", cell_timeout=TIMEOUT)
    inbox = shutil.copytree(EX01_SAMPLES, course / "inbox")
    with Pool(1) as sequential:
        alone = {s: (r.score, r.reason) for s, r in grade_in_process(course, "ex01", inbox, sequential).items()}
    assert {s: score for s, (score, _) in alone.items()} == SCORES
    together = {s: (r["score"], r["reason"]) for s, r in results_of(ex01_class[0]).items() if s in SCORES}
    assert alone == together


def test_the_extra_cases_get_their_scores_and_reasons(graded):
    course, _ = graded
    found = results_of(course)
    for student, (score, words) in EXTRA.items():
        assert found[student]["score"] == score, (student, found[student])
        assert found[student]["max_score"] == 10
        assert words in found[student]["reason"], (student, found[student]["reason"])


def test_the_gradebook_holds_the_same_scores_as_the_results(graded):
    course, _ = graded
    found = results_of(course)
    with Gradebook(f"sqlite:///{course / 'coursework' / 'gradebook.db'}") as gradebook:
        for student, result in found.items():
            if student != "mallory":  # never handed in a readable notebook
                assert gradebook.find_submission("ex01", student).score == result["score"], student
    assert {"alice", "bob", "carol", "dave", "erin", "frank", "grace", "mallory"} == set(found)


def test_the_table_shows_every_student_and_what_was_not_graded(graded):
    course, out = graded
    for student, result in results_of(course).items():
        assert any(line.startswith(student) and f"{result['score']:g}/10" in line for line in out.splitlines()), student
    assert "ex01.ipynb: cannot tell whose notebook this is" in out
    assert "8 graded" in out and "1 could not be run at all: mallory" in out


def test_feedback_shows_results_and_messages_but_not_hidden_tests(graded):
    course, _ = graded
    result = run(["course", "feedback", "ex01"], cwd=course)
    assert result.returncode == 0, result.stdout + result.stderr
    pages = {p.parts[-3]: p.read_text() for p in (course / "coursework" / "feedback").glob("*/ex01/ex01.html")}
    assert set(pages) == set(results_of(course)) - {"mallory"}
    assert "exactly 2x" in pages["bob"] and "Output after the first hidden test is not shown" in pages["bob"]
    for page in pages.values():
        assert "manual_seed(2026" not in page and "BEGIN HIDDEN TESTS" not in page


def test_export_writes_one_row_per_student(graded):
    course, _ = graded
    result = run(["course", "export"], cwd=course)
    assert result.returncode == 0, result.stdout + result.stderr
    rows = {row["student_id"]: float(row["score"]) for row in csv.DictReader((course / "coursework" / "grades.csv").open())}
    assert rows == {student: float(r["score"]) for student, r in results_of(course).items()}


def test_a_missing_folder_is_a_clear_message(graded):
    course, _ = graded
    result = run(["course", "grade", "ex01", "no-such-folder"], cwd=course)
    assert result.returncode == 2 and "no folder of submissions" in result.stderr


def test_stock_nbgrader_commands_work_from_the_root(course_copy):
    import shutil

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
