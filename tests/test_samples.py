"""Every exercise's sample submissions get the scores and reasons in tests/expected/<exercise>.json.

Each file maps a student to {"score": points, "reason": words the reason must contain}, with
"max_score" for the exercise. Exercise 01's samples are graded in test_pipeline.py with the rest of
the instructor pipeline.
"""

import json
import shutil

import pytest

from conftest import ROOT, copy_course, run

EXPECTED = {p.stem: json.loads(p.read_text()) for p in sorted((ROOT / "tests" / "expected").glob("*.json"))}


@pytest.mark.parametrize("exercise", sorted(EXPECTED))
def test_samples_get_their_expected_scores(exercise, tmp_path):
    expected = EXPECTED[exercise]
    course = copy_course(tmp_path / "course")
    shutil.copytree(ROOT / "autograders" / "samples" / exercise, course / "inbox")
    result = run(["course", "grade", exercise, "inbox"], cwd=course)
    assert result.returncode == 0, result.stdout + result.stderr
    folder = course / "coursework" / "results" / exercise
    found = {p.stem: json.loads(p.read_text()) for p in folder.glob("*.json")}
    assert set(found) == set(expected["students"]), result.stdout
    for student, want in expected["students"].items():
        got = found[student]
        assert (got["score"], got["max_score"]) == (want["score"], expected["max_score"]), (student, got)
        assert want["reason"] in got["reason"], (student, got["reason"])
