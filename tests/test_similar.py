"""`course similar EX`: near-identical solution cells are paired, whatever their names and formatting; the release's
and the instructor's own code never make a pair."""

import copy
import os
import re
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


# ---- issue 14: the holes the red team found (H1-H5), each reproduced


RENAME = {"result": "res", "operand": "arg", "local_derivatives": "derivs", "local": "d", "visited": "seen",
          "todo": "stack", "node": "n", "hidden": "hs", "weights": "ws", "weight": "w", "history": "trace",
          "objective": "L", "first": "a", "second": "b", "bias": "bb", "_make": "_new"}

DEAD = '''

def _unused_helpers():
    """Scratch work kept for later."""
    table = {}
    for i in range(10):
        for j in range(10):
            table[(i, j)] = (i * j + 3) % 7 - (i ^ j) // 2
    def norm(values):
        total = sum(v * v for v in values)
        return [v / (total ** 0.5 + 1e-12) for v in values]
    def clamp(x, low=-1.0, high=1.0):
        return low if x < low else high if x > high else x
    def mean_std(xs):
        m = sum(xs) / len(xs)
        return m, (sum((x - m) ** 2 for x in xs) / len(xs)) ** 0.5
    pts = [clamp(t / 10 - 0.5) for t in range(21)]
    return table, norm(pts), mean_std(pts)
'''


def renamed(code: str) -> str:
    """grace's code as a copier hides it: other names, no docstrings or comments, other quotes and spacing."""
    for name, new in RENAME.items():
        code = re.sub(rf"\b{name}\b", new, code)
    code = re.sub(r'^[ \t]*""".*?"""\n', "", code, flags=re.S | re.M)
    return re.sub(r"  # .*", "", code).replace('"', "'").replace(" = ", "=").replace(", ", ",")


def graces(grade_id: str) -> str:
    notebook = nbformat.read(SAMPLES / "grace.ipynb", as_version=4)
    return next(c.source for c in notebook.cells if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id)


def release_of(course) -> nbformat.NotebookNode:
    return nbformat.read(course.release_folder("ex06") / "ex06.ipynb", as_version=4)


def cell_of(notebook, grade_id):
    return next(c for c in notebook.cells if c.get("metadata", {}).get("nbgrader", {}).get("grade_id") == grade_id)


def inbox_with(tmp_path, notebooks: dict, samples=("grace", "carol", "dave")):
    """A folder of submissions: some of the samples, and the notebooks given, by student."""
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    for student in samples:
        shutil.copy(SAMPLES / f"{student}.ipynb", inbox / f"{student}.ipynb")
    for student, notebook in notebooks.items():
        nbformat.write(notebook, inbox / f"{student}.ipynb")
    return inbox


def pairs_in(course, inbox):
    return [(p.first, p.second) for p in similar.find_similar(course, "ex06", collect(inbox, "ex06").submissions).pairs]


def test_copied_code_in_new_untagged_cells_is_compared(tmp_path, course):
    """H1: the release left as it is, grace's code (renamed) in two new cells with no nbgrader tag."""
    mallory = release_of(course)
    mallory.cells.insert(4, nbformat.v4.new_code_cell(renamed(graces("engine"))))
    mallory.cells.insert(13, nbformat.v4.new_code_cell(renamed(graces("train"))))
    assert pairs_in(course, inbox_with(tmp_path, {"mallory": mallory})) == [("grace", "mallory")]


def test_copied_code_whose_solution_tag_was_deleted_is_compared(tmp_path, course):
    """H2: grace's code (renamed) in the solution cells, their nbgrader metadata deleted."""
    nina = release_of(course)
    for grade_id in ("engine", "train"):
        cell = cell_of(nina, grade_id)
        cell.source = renamed(graces(grade_id))
        del cell.metadata["nbgrader"]
    assert pairs_in(course, inbox_with(tmp_path, {"nina": nina})) == [("grace", "nina")]


@pytest.mark.parametrize("unreadable", [False, True])
def test_a_test_cells_id_on_a_copied_cell_does_not_hide_it(tmp_path, course, unreadable):
    """autograde keeps a grade_id on the last cell that claims it (DeduplicateIds): a copied cell that claims a
    test's id before the test runs as written, so it is compared; so it is where nbgrader cannot read the tags."""
    oliver = release_of(course)
    tagged = copy.deepcopy(cell_of(oliver, "test_ops"))
    tagged.id, tagged.source = "copied", renamed(graces("engine")) + "\n\n" + renamed(graces("train"))
    oliver.cells.insert(4, tagged)
    if unreadable:  # a grade cell with no grade_id: nbgrader fails on it
        oliver.cells.append(nbformat.v4.new_code_cell("print(1)", metadata={"nbgrader": {"grade": True}}))
    assert pairs_in(course, inbox_with(tmp_path, {"oliver": oliver})) == [("grace", "oliver")]


def test_the_grade_ids_are_those_nbgrader_keeps(course):
    """similar reads the grade_ids as nbgrader's DeduplicateIds leaves them (written out there, to spare the import)."""
    from nbgrader.preprocessors import DeduplicateIds

    notebook = release_of(course)
    for grade_id in ("test_ops", "engine", "setup"):  # a tagged copy before the original, and one after
        claimed = copy.deepcopy(cell_of(notebook, grade_id))
        notebook.cells.insert(1, claimed)
        notebook.cells.append(copy.deepcopy(claimed))
    notebook.cells.append(nbformat.v4.new_code_cell("x = 1", metadata={"nbgrader": {"grade_id": "test_ops"}}))  # untagged
    kept, _ = DeduplicateIds().preprocess(copy.deepcopy(notebook), {})
    assert similar._grade_ids(notebook.cells) == [c.metadata.get("nbgrader", {}).get("grade_id") for c in kept.cells]


def test_what_autograde_overwrites_and_the_course_own_tests_never_pair(tmp_path, course):
    """Cells that autograde replaces with the instructor's (a test cell, whatever the file holds there) are not
    compared; the tests pasted into a cell of one's own are the course's code; a scratch cell is the student's."""
    source = course.exercise("ex06").notebook
    notebooks = {}
    for number, (student, path) in enumerate(sorted(collect(SAMPLES, "ex06").submissions.items())):
        notebook = nbformat.read(path, as_version=4)
        for grade_id in ("test_ops", "test_order"):  # the instructor's tests, hidden ones too, run again
            notebook.cells.append(nbformat.v4.new_code_cell(cell_of(source, grade_id).source + "\nprint('passed')\n"))
        notebook.cells.append(nbformat.v4.new_code_cell(f"params, losses = train([0.{number}] * 9, X, y, 0.5, 300)\n"
                                                        f"print(losses[-1])\n"))
        cell_of(notebook, "test_train").source = graces("engine")  # overwritten by autograde: never runs
        notebooks[student] = notebook
    assert pairs_in(course, inbox_with(tmp_path, notebooks, samples=())) == [("grace", "heidi")]


def test_dead_code_on_one_side_does_not_hide_a_copy(tmp_path, course):
    """H3: grace's code renamed and reformatted, and one unused 20-line function added: 94% of grace's code is in
    oscar's, 72% the other way. The larger share decides."""
    oscar = release_of(course)
    cell_of(oscar, "engine").source = renamed(graces("engine"))
    cell_of(oscar, "train").source = renamed(graces("train")) + DEAD
    found = similar.find_similar(course, "ex06", collect(inbox_with(tmp_path, {"oscar": oscar}), "ex06").submissions)
    assert [(p.first, p.second) for p in found.pairs] == [("grace", "oscar")]
    assert min(found.pairs[0].similarity) < similar.THRESHOLD <= max(found.pairs[0].similarity)


def test_the_rule_needs_a_long_match_in_either_direction():
    assert similar.is_pair((0.94, 0.72), similar.MIN_MATCH)
    assert similar.is_pair((0.3, 0.8), 1000)
    assert not similar.is_pair((1.0, 1.0), similar.MIN_MATCH - 1)  # every right answer to a short task
    assert not similar.is_pair((0.79, 0.6), 5000)


@pytest.mark.parametrize("exercise", ["ex01", "ex02", "ex03", "ex04", "ex05"])
def test_no_sample_set_pairs_honest_students(course, exercise):
    """The samples of every exercise: short tasks whose right answers look alike, and none is a copy."""
    submissions = collect(ROOT / "autograders" / "samples" / exercise, exercise)
    found = similar.find_similar(course, exercise, submissions)
    assert found.pairs == [] and len(found.students) == 6 and found.skipped == []


def test_a_file_name_that_is_not_utf8_costs_only_its_student(tmp_path, course):
    """H4: `M\\x81ller.ipynb`, as unzipping a zip made on Windows gives it, is no notebook: it is named, escaped,
    and the page and the notes can still be written as UTF-8."""
    inbox = shutil.copytree(SAMPLES, tmp_path / "inbox")
    with open(os.path.join(bytes(inbox), b"M\x81ller.ipynb"), "w") as f:
        f.write("this is not a notebook")
    found = similar.find_similar(course, "ex06", collect(inbox, "ex06").submissions)
    assert [(p.first, p.second) for p in found.pairs] == [("grace", "heidi")]
    assert found.skipped == ["M_ller: M\\udc81ller.ipynb could not be read (NotJSONError)"]
    page = similar.write(course, found).read_bytes().decode("utf-8")  # strict: what a browser reads
    assert "M\\udc81ller.ipynb" in page and "data-first='grace' data-second='heidi'" in page


def test_a_lone_surrogate_in_a_cell_costs_nobody(tmp_path, course):
    """H4: "\\ud800" in the JSON of a copied cell: the copy is still paired, and the page is written."""
    victor = nbformat.read(SAMPLES / "grace.ipynb", as_version=4)
    cell_of(victor, "train").source += "\n\nmark = 'SURROGATE'\n"
    inbox = inbox_with(tmp_path, {})
    (inbox / "victor.ipynb").write_text(nbformat.writes(victor).replace("SURROGATE", "\\ud800"))
    assert "\ud800" in nbformat.read(inbox / "victor.ipynb", as_version=4).cells[11].source
    found = similar.find_similar(course, "ex06", collect(inbox, "ex06").submissions)
    assert [(p.first, p.second) for p in found.pairs] == [("grace", "victor")]
    page = similar.write(course, found).read_bytes().decode("utf-8")
    assert "mark = &#39;\\ud800&#39;" in page


def test_the_page_is_written_whole_or_not_at_all(course, monkeypatch):
    """H4: text that UTF-8 cannot hold is escaped on the page; a failure while writing leaves the old page as it was
    (the new one is written to a temporary file, which then takes the old one's place in one step)."""
    found = similar.find_similar(course, "ex06", collect(SAMPLES, "ex06").submissions)
    path = similar.write(course, found)
    monkeypatch.setattr(similar, "page", lambda found, threshold=similar.THRESHOLD: "<p>\ud800 M\udc81ller</p>")
    assert similar.write(course, found).read_bytes().decode("utf-8") == "<p>\\ud800 M\\udc81ller</p>"
    before = path.read_bytes()

    def broken(*arguments):
        raise OSError("disk full")

    monkeypatch.setattr(similar.os, "replace", broken)
    with pytest.raises(OSError):
        similar.write(course, found)
    assert path.read_bytes() == before
    assert sorted(p.name for p in path.parent.iterdir()) == ["ex06.html"]  # no temporary file left behind


def test_a_huge_notebook_is_not_compared_and_says_why(tmp_path, course, monkeypatch):
    """H5: code over the cap (200,000 characters; 20,000 here, to be quick) is left out with a note."""
    monkeypatch.setattr(similar, "MAX_CODE", 20_000)
    walter = nbformat.read(SAMPLES / "grace.ipynb", as_version=4)
    cell_of(walter, "train").source += "".join(f"\ndef f{i}(a, b):\n    return [a * {i} + b, b - a]\n" for i in range(1000))
    found = similar.find_similar(course, "ex06", collect(inbox_with(tmp_path, {"walter": walter}), "ex06").submissions)
    assert found.students == ["carol", "dave", "grace"]
    assert len(found.skipped) == 1 and found.skipped[0].startswith("walter: walter.ipynb ")
    assert "characters of code, over the cap of 20,000" in found.skipped[0]


def test_a_huge_file_is_not_even_read(tmp_path, course, monkeypatch):
    monkeypatch.setattr(similar, "MAX_FILE", 10_000)
    found = similar.find_similar(course, "ex06", collect(inbox_with(tmp_path, {}, samples=("grace", "carol")), "ex06").submissions)
    assert found.students == [] and all("MB per notebook" in s for s in found.skipped) and len(found.skipped) == 2


def test_collect_notes_are_named_as_course_grade_names_them(tmp_path, course):
    """Given collect's Collection, its notes (two notebooks for one student, a file that is no notebook) are listed."""
    inbox = inbox_with(tmp_path, {}, samples=("grace", "heidi"))
    shutil.copy(SAMPLES / "carol.ipynb", inbox / "ex06 (grace).ipynb")
    os.utime(inbox / "grace.ipynb", (1, 1))
    (inbox / "notes.txt").write_text("hello")
    found = similar.find_similar(course, "ex06", collect(inbox, "ex06"))
    assert found.skipped == ["notes.txt: not a notebook, skipped",
                             "grace.ipynb: grace handed in 2 notebooks; graded the newest, ex06 (grace).ipynb"]
    assert found.files == {"grace": "ex06 (grace).ipynb", "heidi": "heidi.ipynb"} and found.pairs == []


def test_the_command_prints_collects_notes(tmp_path, course):
    inbox = inbox_with(tmp_path, {}, samples=("grace", "heidi"))
    (inbox / "notes.txt").write_text("hello")
    done = course_in_process(["similar", "ex06", inbox], course.root)
    assert done.returncode == 0, done.stderr
    assert "note: notes.txt: not a notebook, skipped" in done.stdout
