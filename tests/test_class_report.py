"""The class, as a new instructor meets it: exercise 06's samples graded once with `course grade`, then the report,
the grades for Canvas, the similar pair, and the instructor's word (a manual score, a rejected flag, a score set in
nbgrader's formgrader) through two more gradings, with and without --resume.

All in one file, in order: pytest-xdist's --dist loadfile runs them in one process, which grades the class once.
"""

import csv
import json
import re
import shutil

import nbformat
import pytest
from conftest import ROOT, copy_course, run
from nbgrader.api import Gradebook
from test_samples import EXPECTED

pytestmark = pytest.mark.pipeline

SAMPLES = ROOT / "autograders" / "samples" / "ex06"
ROSTER = """Student,ID,SIS User ID,SIS Login ID,Section,ex06 (7001)
    Points Possible,,,,,10.00
"Smith, Alice",1,S1,alice,A,
"Brown, Bob",2,S2,bob,A,
"Lee, Carol",3,S3,carol,A,
"Jones, Dave",4,S4,dave,B,
"Park, Erin",5,S5,erin,B,
"Frank, Frank",6,S6,frank,B,
"Hopper, Grace",7,S7,grace,B,
"Klum, Heidi",8,S8,heidi,B,
"Late, Larry",9,S9,larry,B,
"""


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """The samples and mallory (alice's notebook and an exec() the rules check cannot judge), graded once."""
    course = copy_course(tmp_path_factory.mktemp("ex06-class") / "course")
    inbox = shutil.copytree(SAMPLES, course / "inbox")
    notebook = nbformat.read(SAMPLES / "alice" / "ex06.ipynb", as_version=4)
    train = next(c for c in notebook.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "train")
    train.source += '\n\nexec("steps = 1")\n'
    nbformat.write(notebook, inbox / "mallory.ipynb")
    done = run(["course", "grade", "ex06", "inbox"], cwd=course)
    assert done.returncode == 0, done.stdout + done.stderr
    return course


def stored(course) -> dict:
    return {p.stem: json.loads(p.read_text()) for p in (course / "coursework" / "results" / "ex06").glob("*.json")}


def test_the_class_got_its_scores_and_mallory_awaits_review(graded):
    found = stored(graded)
    assert {s: r["score"] for s, r in found.items() if s != "mallory"} == \
        {s: want["score"] for s, want in EXPECTED["ex06"]["students"].items()}
    assert found["mallory"]["score"] == 10 and found["mallory"]["flags"][0]["decision"] == "pending"


def test_the_report_shows_the_class_mistakes_with_the_counts_of_the_results(graded):
    done = run(["course", "report", "ex06"], cwd=graded)
    assert done.returncode == 0, done.stderr
    html = (graded / "coursework" / "reports" / "ex06.html").read_text()
    on_page = {code: int(n) for code, n in re.findall(r"data-code='([^']+)' data-count='(\d+)'", html)}
    in_results = {}
    for student, result in stored(graded).items():
        for code in {c for cell in result["cells"].values() for c in cell["codes"]}:
            in_results[code] = in_results.get(code, 0) + 1
    assert on_page == in_results
    assert on_page["no-chain-factor"] == 1 and on_page["engine-overwrite"] == 1 and on_page["error-AttributeError"] == 1
    assert "class='flag' data-student='mallory' data-decision='pending'" in html
    assert "    1  engine-overwrite:" in done.stdout
    assert "awaiting review: mallory" in done.stdout


def test_the_canvas_export_has_the_columns_canvas_imports(graded):
    (graded / "roster.csv").write_text(ROSTER)
    done = run(["course", "export", "--format", "canvas", "--roster", "roster.csv"], cwd=graded)
    assert done.returncode == 0, done.stderr
    with (graded / "coursework" / "grades-canvas.csv").open(newline="") as f:
        header, points, *rows = list(csv.reader(f))
    assert header == ["Student", "ID", "SIS User ID", "SIS Login ID", "Section", "ex06 (7001)"]
    assert points == ["Points Possible", "", "", "", "", "10"]
    scores = {s: r["score"] for s, r in stored(graded).items()}
    assert {row[3]: row[5] for row in rows} == {**{s: f"{v:g}" for s, v in scores.items() if s != "mallory"}, "larry": ""}
    assert "NOT WRITTEN (no roster row): mallory" in done.stdout


def test_similar_finds_the_planted_pair_and_no_other(graded):
    done = run(["course", "similar", "ex06"], cwd=graded)
    assert done.returncode == 0, done.stderr
    pairs = [line for line in done.stdout.splitlines() if "% of their code in common" in line]
    assert len(pairs) == 1 and pairs[0].startswith("grace and heidi: 100% and 100%")
    assert "9 submissions compared" in done.stdout


def test_the_instructors_word_survives_grading_again_with_and_without_resume(graded):
    scored = run(["course", "score", "ex06", "bob", "test_train", "2", "--why", "the training loop is right"], cwd=graded)
    assert scored.returncode == 0 and "now 8/10" in scored.stdout, scored.stdout + scored.stderr
    rejected = run(["course", "review", "ex06", "mallory", "--reject"], cwd=graded)
    assert rejected.returncode == 0 and "now 0/10" in rejected.stdout, rejected.stdout + rejected.stderr

    again = run(["course", "grade", "ex06", "inbox"], cwd=graded)
    assert again.returncode == 0, again.stderr
    found = stored(graded)
    assert found["bob"]["score"] == 8 and found["bob"]["cells"]["test_train"]["auto_score"] == 0
    assert found["mallory"]["score"] == 0 and found["mallory"]["flags"][0]["decision"] == "rejected"
    assert re.search(r"^bob\s+8/10  \* ", again.stdout, re.M) and "test_train: manual score 2/2" in again.stdout
    assert "1 with a manual score (*), kept: bob" in again.stdout

    with Gradebook(f"sqlite:///{graded / 'coursework' / 'gradebook.db'}") as gradebook:
        assert gradebook.find_submission("ex06", "bob").score == 8
        gradebook.find_grade("test_order", "ex06", "ex06", "carol").manual_score = 1.0  # as formgrader does
        gradebook.db.commit()
    resumed = run(["course", "grade", "ex06", "inbox", "--resume"], cwd=graded)
    assert resumed.returncode == 0, resumed.stderr
    found = stored(graded)
    assert (found["bob"]["score"], found["mallory"]["score"], found["carol"]["score"]) == (8, 0, 5)
    assert found["carol"]["cells"]["test_order"]["manual_why"] == "set in nbgrader's formgrader"
    assert "9 already graded and unchanged: kept (--resume)" in resumed.stdout
    assert "2 with a manual score (*), kept: bob, carol" in resumed.stdout
    with Gradebook(f"sqlite:///{graded / 'coursework' / 'gradebook.db'}") as gradebook:
        assert {s: gradebook.find_submission("ex06", s).score for s in ("bob", "carol", "mallory")} == \
            {"bob": 8, "carol": 5, "mallory": 0}
