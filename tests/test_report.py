"""`course report`: the class's mistakes, counted from the results JSON, on a page and in the terminal.

The results are written here directly (no grading), so these tests are fast; test_class_report.py grades the
samples once and checks the same end to end.
"""

import json
import re
from collections import Counter

import pytest
from conftest import copy_course, course_in_process

from autograders import report, results
from autograders.course import Course
from autograders.results import CellResult, Flag, Result, summarize

ORDER = ["test_neuron_forward", "test_neuron_backward", "test_shared_forward", "test_shared_backward"]
POINTS = {"test_neuron_forward": 2, "test_neuron_backward": 4, "test_shared_forward": 1, "test_shared_backward": 3}
# student -> grade_id -> codes of a failed cell (a cell not named passed)
CLASS = {
    "ana": {},
    "ben": {"test_neuron_backward": ["grad-not-zeroed"], "test_shared_backward": ["grad-not-zeroed"]},
    "cai": {"test_neuron_backward": ["sign-flipped"]},
    "dov": {"test_neuron_backward": ["grad-not-zeroed"]},
    "eli": {"test_shared_backward": ["timeout"]},
    "fay": {"test_neuron_forward": ["error-NameError"], "test_neuron_backward": ["error-NameError"]},
    "gus": {"test_shared_forward": []},  # lost points with no diagnosis named
}


def result_of(student: str, failed: dict) -> Result:
    cells = {g: CellResult(0.0 if g in failed else float(POINTS[g]), float(POINTS[g]),
                           f"{g} went wrong" if g in failed else "", list(failed.get(g, []))) for g in ORDER}
    score, max_score, reason = summarize(cells, [], [])
    return Result(student, score, max_score, reason, cells, seconds=0.5 + len(student) * 0.1 + len(failed))


@pytest.fixture
def course(tmp_path):
    root = copy_course(tmp_path / "course")
    folder = root / "coursework" / "results" / "ex01"
    for student, failed in CLASS.items():
        results.write(folder / f"{student}.json", result_of(student, failed))
    flagged = result_of("hal", {})
    flagged.flags = [Flag("f1", "cell 3", 4, "exec(code)", "exec runs code the rules check cannot see")]
    results.write(folder / "hal.json", flagged)
    manual = result_of("ivy", {"test_shared_backward": ["timeout"]})
    cell = manual.cells["test_shared_backward"]
    cell.auto_score, cell.score, cell.manual_why = cell.score, 2.0, "the loop ends; the limit was too short"
    manual.score, manual.max_score, manual.reason = summarize(manual.cells, [], [])
    results.write(folder / "ivy.json", manual)
    results.write(folder / "jon.json", Result("jon", 0.0, 10.0, "not a valid Jupyter notebook"))
    return root


def counts_from_json(root) -> dict:
    """The diagnoses' counts as a reader of the results JSON finds them: students per code."""
    found = {}
    for path in sorted((root / "coursework" / "results" / "ex01").glob("*.json")):
        data = json.loads(path.read_text())
        for cell in data["cells"].values():
            for code in cell["codes"]:
                found.setdefault(code, set()).add(data["student"])
    return {code: len(students) for code, students in found.items()}


def test_the_counts_on_the_page_are_the_counts_in_the_results(course):
    summaries, page = report.build(Course(course), ["ex01"])
    html = page.read_text()
    on_page = {code: int(n) for code, n in re.findall(r"data-code='([^']+)' data-count='(\d+)'", html)}
    assert on_page == counts_from_json(course) == {"grad-not-zeroed": 2, "sign-flipped": 1, "timeout": 2,
                                                   "error-NameError": 1}
    codes = [code for code, _ in re.findall(r"data-code='([^']+)' data-count='(\d+)'", html)]
    assert codes[0] == "grad-not-zeroed" and len(codes) == 4  # the most students first
    ben_dov = re.search(r"data-code='grad-not-zeroed' data-count='2' data-students='([^']*)'", html).group(1)
    assert ben_dov == "ben dov"


def test_each_cell_has_its_pass_rate_and_mean_points(course):
    (summary,), page = report.build(Course(course), ["ex01"])
    html = page.read_text()
    ran = [s for s in [*CLASS, "hal", "ivy"]]
    for grade_id in ORDER:
        failed = sum(grade_id in CLASS.get(s, {}) for s in ran) + (grade_id == "test_shared_backward")  # ivy's, by hand
        passed = len(ran) - failed
        row = re.search(rf"data-cell='{grade_id}' data-passed='(\d+)' data-graded='(\d+)' data-mean='([\d.]+)'", html)
        assert (int(row.group(1)), int(row.group(2))) == (passed, len(ran)), grade_id
        points = [POINTS[grade_id] * (grade_id not in CLASS.get(s, {})) for s in ran]
        if grade_id == "test_shared_backward":
            points[ran.index("ivy")] = 2
        assert float(row.group(3)) == pytest.approx(sum(points) / len(ran), abs=1e-4)


def test_the_page_names_what_never_ran_what_awaits_review_manual_scores_and_time(course):
    (summary,), page = report.build(Course(course), ["ex01"])
    html = page.read_text()
    assert "data-student='jon'" in html and "not a valid Jupyter notebook" in html
    assert "class='flag' data-student='hal' data-decision='pending'" in html and "exec(code)" in html
    assert "class='manual' data-student='ivy'" in html and "the loop ends; the limit was too short" in html
    assert "grading time per submission" in html and html.count("data:image/png;base64,") == 4
    assert "gus" in html and "class='undiagnosed'" in html
    assert summary.never_ran == [("jon", "not a valid Jupyter notebook")]
    assert set(summary.seconds) == set(CLASS) | {"hal", "ivy"}  # jon's notebook never ran: no time


def test_the_page_is_self_contained_and_its_figures_deterministic(course):
    _, page = report.build(Course(course), ["ex01"])
    first = page.read_bytes()
    _, again = report.build(Course(course), ["ex01"])
    assert again.read_bytes() == first
    assert not re.search(rb"(src|href)=['\"](?!data:|#)", first)  # nothing fetched: every image is embedded


def test_a_students_text_is_shown_never_obeyed(course):
    folder = course / "coursework" / "results" / "ex01"
    sly = result_of("sly", {"test_neuron_forward": []})  # no code: its reason is listed as it is
    sly.cells["test_neuron_forward"].reason = "<script>alert(1)</script>"
    sly.flags = [Flag("f2", "cell 2", 1, "<img src=x onerror=alert(1)>", "exec")]
    results.write(folder / "sly.json", sly)
    _, page = report.build(Course(course), ["ex01"])
    html = page.read_text()
    assert "<script>" not in html and "<img src=x" not in html and "&lt;script&gt;" in html


def test_the_text_summary_shows_the_same_numbers(course):
    (summary,), _ = report.build(Course(course), ["ex01"])
    text = report.text(summary)
    assert "ex01: 10 students" in text
    assert "  2  grad-not-zeroed:" in text and "(ben, dov)" in text
    assert "never ran: jon (not a valid Jupyter notebook)" in text
    assert "awaiting review: hal (cell 3 line 4)" in text and "manual scores: ivy test_shared_backward 2" in text
    counted = Counter(line.split()[1].rstrip(":") for line in text.splitlines() if re.match(r"\s+\d+\s+\S+:", line)
                      and "of" not in line.split()[1])
    assert set(counted) == set(counts_from_json(course))


def test_course_report_from_the_command_line(course):
    done = course_in_process(["report", "ex01"], course)
    assert done.returncode == 0, done.stderr
    assert "grad-not-zeroed" in done.stdout and "coursework/reports/ex01.html" in done.stdout
    every = course_in_process(["report"], course)
    assert every.returncode == 0 and (course / "coursework" / "reports" / "class.html").is_file()


@pytest.mark.parametrize("command, words", [
    (["report", "ex02"], "no results for ex02 yet: grade the class first"),
    (["report", "ex99"], "no exercise 'ex99'"),
    (["score", "ex01", "nobody"], "no result for 'nobody' in ex01 (graded: ana, ben"),
    (["score", "ex01", "ben", "test_nope", "1", "--why", "x"], "ex01 has no test cell 'test_nope'"),
    (["score", "ex01", "ben", "test_shared_forward", "5", "--why", "x"], "is worth 0 to 1 points, not 5"),
    (["score", "ex01", "ben", "test_shared_forward", "1"], "say why with --why"),
    (["score", "ex01", "jon", "test_shared_forward", "1", "--why", "x"], "could not be run"),
    (["similar", "ex02"], "no results for ex02 yet"),
])
def test_mistakes_on_the_command_line_get_one_clear_line_and_exit_2(course, command, words):
    before = sorted(p.relative_to(course) for p in (course / "coursework").rglob("*"))
    done = course_in_process(command, course)
    assert done.returncode == 2 and words in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and done.stdout == ""
    assert sorted(p.relative_to(course) for p in (course / "coursework").rglob("*")) == before  # nothing written
