"""The instructor's word: a manual score replaces the grader's (which is kept beside it), the table marks it, and a
kept result whose flags were decided since is graded again. (test_class_report.py regrades the samples.)"""

import pytest
from conftest import copy_course

from autograders import record, results
from autograders.course import Course
from autograders.results import CellResult, Flag, Result, format_table, summarize


def graded() -> Result:
    cells = {"test_a": CellResult(0.0, 3.0, "stopped after the 30 s time limit", ["timeout"]),
             "test_b": CellResult(2.0, 2.0)}
    return Result("erin", *summarize(cells, [], []), cells)


def test_a_manual_score_replaces_the_graders_and_keeps_it():
    result = graded()
    assert record.apply_manual(result, {"test_a": {"points": 2.5, "why": "the loop ends; the limit is too short"}})
    cell = result.cells["test_a"]
    assert (cell.score, cell.auto_score, cell.manual, cell.codes) == (2.5, 0.0, True, ["timeout"])
    assert result.score == 4.5 and result.manual
    assert result.reason == "test_a: manual score 2.5/3 (the loop ends, the limit is too short)"
    assert not record.apply_manual(result, {"test_a": {"points": 2.5, "why": "the loop ends; the limit is too short"}})


def test_a_manual_score_given_for_an_earlier_file_is_set_aside_and_said():
    """The student handed in again: the instructor's score (and reason) was about another file."""
    result = graded()
    result.sha256 = "new"
    record.apply_manual(result, {"test_a": {"points": 2.5, "why": "typo, engine otherwise right", "sha256": "old"}})
    assert not result.manual and result.cells["test_a"].score == 0.0 and result.score == 2.0
    assert "a manual score for test_a (2.5 by hand) was given for an earlier file" in result.reason
    result.sha256 = "old"  # the same file as when it was given: it holds, and the note goes
    assert record.apply_manual(result, {"test_a": {"points": 2.5, "why": "typo", "sha256": "old"}})
    assert result.manual and result.score == 4.5 and "earlier file" not in result.reason


def test_a_withdrawn_manual_score_gives_the_grader_its_score_back():
    result = graded()
    record.apply_manual(result, {"test_a": {"points": 3, "why": "fine"}})
    assert record.apply_manual(result, {})
    assert result.to_json() == graded().to_json()


def test_a_notebook_that_never_ran_has_no_cell_to_score():
    unread = Result("mallory", 0.0, 10.0, "not a valid Jupyter notebook")
    assert not record.apply_manual(unread, {"test_a": {"points": 3, "why": "emailed"}})


def test_the_table_marks_manual_scores():
    result = graded()
    record.apply_manual(result, {"test_a": {"points": 3, "why": "fine"}})
    table = format_table([result, Result("frank", 0.0, 5.0, "not answered", {"test_a": CellResult(0.0, 5.0)})])
    assert "erin        5/5   * test_a: manual score 3/3 (fine)" in table
    assert "frank       0/5     not answered" in table
    assert table.endswith("* a manual score: the instructor's word (course score), kept at every later course grade")


def test_results_from_before_manual_scores_still_read():
    data = graded().to_json()
    for cell in data["cells"].values():
        del cell["auto_score"], cell["manual_why"]
    assert Result.from_json(data).to_json() == graded().to_json()


@pytest.fixture
def course(tmp_path):
    return Course(copy_course(tmp_path / "course"))


def test_a_kept_result_is_graded_again_when_its_flags_were_decided_since(course):
    exercise = course.exercise("ex01")
    result = graded()
    result.sha256 = "abc"
    result.flags = [Flag("f1", "cell 3", 4, "exec(code)", "exec")]
    results.write(course.results_folder("ex01") / "erin.json", result)
    assert record.previous(course, exercise, "erin", "abc", {}) is not None
    assert record.previous(course, exercise, "erin", "abc", {"f1": "rejected"}) is None
    assert record.previous(course, exercise, "erin", "changed", {}) is None


def test_manual_scores_are_kept_beside_the_results(course):
    exercise = course.exercise("ex01")
    record.set_manual_score(course, exercise, "erin", "test_shared_backward", 2.0, "the loop ends")
    record.set_manual_score(course, exercise, "bob", "test_neuron_backward", 4.0, "a typo in the test")
    assert record.manual_scores(course, "ex01") == {
        "bob": {"test_neuron_backward": {"points": 4.0, "why": "a typo in the test"}},
        "erin": {"test_shared_backward": {"points": 2.0, "why": "the loop ends"}},
    }
    record.set_manual_score(course, exercise, "bob", "test_neuron_backward", None, "")
    assert list(record.manual_scores(course, "ex01")) == ["erin"]
