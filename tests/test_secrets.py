"""No hidden test reaches a student, on any exercise, whatever the submission does to carry it out.

Each exercise gets a spy (tests/attacks.py): its correct sample plus cells that walk the process's memory
and frames, listen to IPython's events, trace calls and read linecache, then print what they find plainly,
in base64, reversed and in hex, raise it inside exceptions, display it, capture stdout early to print it
late, and write it to a file for a later cell. The spy does see the hidden tests (shown on ex01, from the
sandbox's raw outputs); none of it may appear, plainly or decoded, in any feedback page, in the results
JSON or in the grade table.
"""

import nbformat
import pytest
from attacks import ATTACKS, MEMORY, leaked, spy_notebook
from conftest import ROOT, copy_course, grade_in_process

from autograders import feedback
from autograders.course import Course
from autograders.pipeline import job_of
from autograders.prepare import prepare
from autograders.release import secret_lines
from autograders.results import format_table

pytestmark = pytest.mark.pipeline
EXERCISES = sorted(p.name for p in (ROOT / "solutions").iterdir() if p.is_dir())


PUBLIC = "\n".join(p.read_text() for p in sorted((ROOT / "utils").glob("*.py")))  # every student can read these


def hidden_lines(exercise: str) -> list[str]:
    """The lines of the exercise's hidden tests that are its own: not shown by the release or the course's
    helpers, and long enough not to be a commonplace any library holds ("return model")."""
    source = ROOT / "solutions" / exercise / f"{exercise}.ipynb"
    return [line for line, kind in secret_lines(source).items() if kind == "hidden test" and line not in PUBLIC and len(line) >= 24]


@pytest.fixture(scope="module")
def spied(tmp_path_factory, pool):
    """Every exercise's spy graded and its feedback written; the tables printed."""
    course = copy_course(tmp_path_factory.mktemp("spied") / "course")
    tables = {}
    for exercise in EXERCISES:
        inbox = course / "inbox" / exercise
        (inbox / "spy").mkdir(parents=True)
        nbformat.write(spy_notebook(exercise), inbox / "spy" / f"{exercise}.ipynb")
        results = grade_in_process(course, exercise, inbox, pool)
        tables[exercise] = format_table(list(results.values()), width=200)
        feedback.generate(Course(course), exercise)
    return course, tables


@pytest.fixture(scope="module")
def one_by_one(tmp_path_factory, pool):
    """Exercise 01 with each attack alone, as its own student: graded, with feedback; and its raw outputs."""
    course = Course(copy_course(tmp_path_factory.mktemp("one-by-one") / "course"))
    inbox = course.root / "inbox"
    for attack in ATTACKS:
        (inbox / attack).mkdir(parents=True)
        nbformat.write(spy_notebook("ex01", (attack,)), inbox / attack / "ex01.ipynb")
    results = grade_in_process(course.root, "ex01", inbox, pool)
    feedback.generate(course, "ex01")
    raw = {}
    for attack in ATTACKS:
        prepared = prepare(course, course.exercise("ex01"), attack, inbox / attack / "ex01.ipynb")
        outcome = pool.submit(job_of(course, prepared)).result()
        raw[attack] = {step.source: outcome.outputs[i] or [] for i, step in enumerate(prepared.steps)}
    return course, results, raw


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_each_attack_alone_reaches_the_tests_in_the_sandbox_and_nothing_reaches_the_student(one_by_one, attack):
    course, results, raw = one_by_one
    secrets = hidden_lines("ex01")
    printed = "\n".join(str(o) for outputs in raw[attack].values() for o in outputs)
    if attack == "memory":  # before its first test the process holds no test: nothing to find (the fork server)
        assert leaked(secrets, "\n".join(str(o) for o in raw[attack][MEMORY])) == []
    else:  # once tests have run, the spy does see them: only the grader's filter keeps them from the student
        assert len(leaked(secrets, printed)) > 5, printed[:2000]
    page = course.feedback_folder() / attack / "ex01" / "ex01.html"
    for text in (page.read_text(), (course.results_folder("ex01") / f"{attack}.json").read_text(),
                 format_table([results[attack]], width=200)):
        assert leaked(secrets, text) == []


@pytest.mark.parametrize("exercise", EXERCISES)
def test_no_hidden_test_line_reaches_feedback_results_or_table(spied, exercise):
    course, tables = spied
    secrets = hidden_lines(exercise)
    assert len(secrets) >= 20
    pages = sorted((course / "coursework" / "feedback").glob(f"*/{exercise}/*"))
    assert {p.parts[-3] for p in pages} == {"spy"}
    files = pages + sorted((course / "coursework" / "results" / exercise).glob("*.json"))
    for path in files:
        assert leaked(secrets, path.read_text()) == [], path
    assert leaked(secrets, tables[exercise]) == []
    spy = next(p for p in pages if p.parts[-3] == "spy").read_text()
    assert "Output after the first hidden test is not shown" in spy
