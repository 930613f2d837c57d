"""Every exercise's sample submissions get the scores and reasons in tests/expected/<exercise>.json.

Each file maps a student to {"score": points, "reason": words the reason must contain}, with
"max_score" for the exercise. Exercise 01's samples are those of the class graded once per session
with `course grade` (conftest.ex01_class); the others are graded here, in process, on the shared pool.
"""

import json
import shutil

import pytest

from conftest import ROOT, copy_course, grade_in_process, results_of

pytestmark = pytest.mark.pipeline

EXPECTED = {p.stem: json.loads(p.read_text()) for p in sorted((ROOT / "tests" / "expected").glob("*.json"))}


@pytest.mark.parametrize("exercise", sorted(EXPECTED))
def test_samples_get_their_expected_scores(exercise, tmp_path, pool, request):
    expected = EXPECTED[exercise]
    if exercise == "ex01":
        course, _ = request.getfixturevalue("ex01_class")
        found = {s: r for s, r in results_of(course).items() if s in expected["students"]}
    else:
        course = copy_course(tmp_path / "course")
        inbox = shutil.copytree(ROOT / "autograders" / "samples" / exercise, course / "inbox")
        found = {s: r.to_json() for s, r in grade_in_process(course, exercise, inbox, pool).items()}
    assert set(found) == set(expected["students"])
    for student, want in expected["students"].items():
        got = found[student]
        assert (got["score"], got["max_score"]) == (want["score"], expected["max_score"]), (student, got["reason"])
        assert want["reason"] in got["reason"], (student, got["reason"])
