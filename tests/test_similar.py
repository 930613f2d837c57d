"""`course similar EX`: near-identical solution cells are paired, whatever their names and formatting; the release's
and the instructor's own code never make a pair."""

import shutil

import nbformat
import pytest
from conftest import ROOT, copy_course, course_in_process

from autograders import similar
from autograders.collect import collect
from autograders.course import Course

SAMPLES = ROOT / "autograders" / "samples" / "ex06"


@pytest.fixture
def course(tmp_path):
    return Course(copy_course(tmp_path / "course"))


def with_solution_cells(notebook_path, source_notebook, path):
    """A copy of a submission whose solution cells are those of `source_notebook`."""
    notebook = nbformat.read(notebook_path, as_version=4)
    given = {c.metadata["nbgrader"]["grade_id"]: c.source for c in source_notebook.cells
             if c.metadata.get("nbgrader", {}).get("solution")}
    for cell in notebook.cells:
        grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        if grade_id in given:
            cell.source = given[grade_id]
    nbformat.write(notebook, path)
    return path


def test_the_planted_pair_is_found_and_no_other(course):
    found = similar.find_similar(course, "ex06", collect(SAMPLES, "ex06").submissions)
    assert [(p.first, p.second) for p in found.pairs] == [("grace", "heidi")]
    assert min(found.pairs[0].similarity) > 0.95 and found.pairs[0].tokens >= similar.MIN_MATCH
    assert found.students == ["alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi"]


def test_two_that_share_a_renamed_solution_pair_two_that_do_not_stay_apart(tmp_path, course):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    for student in ("grace", "heidi", "carol", "dave"):
        shutil.copy(SAMPLES / f"{student}.ipynb", inbox / f"{student}.ipynb")
    found = similar.find_similar(course, "ex06", collect(inbox, "ex06").submissions)
    assert [(p.first, p.second) for p in found.pairs] == [("grace", "heidi")]


def test_the_course_own_code_never_makes_a_pair(tmp_path, course):
    exercise = course.exercise("ex06")
    release = nbformat.read(course.release_folder("ex06") / "ex06.ipynb", as_version=4)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    # two blank releases, and two copies of the model answer: the same code, all of it the course's own
    for student, source in (("kept1", release), ("kept2", release), ("model1", exercise.notebook), ("model2", exercise.notebook)):
        with_solution_cells(SAMPLES / "alice" / "ex06.ipynb", source, inbox / f"{student}.ipynb")
    found = similar.find_similar(course, "ex06", collect(inbox, "ex06").submissions)
    assert found.pairs == [] and len(found.students) == 4


def test_an_unreadable_notebook_is_named_not_compared(tmp_path, course):
    inbox = shutil.copytree(SAMPLES, tmp_path / "inbox")
    (inbox / "mallory.ipynb").write_text("{ not json")
    found = similar.find_similar(course, "ex06", collect(inbox, "ex06").submissions)
    assert [(p.first, p.second) for p in found.pairs] == [("grace", "heidi")]
    assert found.skipped == ["mallory: mallory.ipynb could not be read (NotJSONError)"]


def test_the_page_shows_the_matching_code_side_by_side(course):
    found = similar.find_similar(course, "ex06", collect(SAMPLES, "ex06").submissions)
    html = similar.page(found)
    assert html.count("<section class='pair-section'") == 1 and "data-first='grace' data-second='heidi'" in html
    assert "<mark>" in html and "_node_from" in html and "_make" in html  # each side's own names, marked where they match
    assert "<script" not in html


def test_course_similar_from_the_command_line(course):
    done = course_in_process(["similar", "ex06", SAMPLES], course.root)
    assert done.returncode == 0, done.stderr
    assert "grace and heidi" in done.stdout and "1 similar pair(s)" in done.stdout
    assert (course.work / "similar" / "ex06.html").is_file()
