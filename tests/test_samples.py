"""Every exercise's sample submissions get the scores and reasons in tests/expected/<exercise>.json.

Each file maps a student to {"score": points, "reason": words the reason must contain, "codes": the
diagnosis codes each test cell records}, with "max_score" for the exercise. Exercise 01's samples are
those of the class graded once per session with `course grade` (checked in test_pipeline.py); the
others are graded here, in process, on the shared pool.
"""

import json
import shutil

import pytest
from conftest import ROOT, copy_course, grade_in_process

pytestmark = pytest.mark.pipeline

EXPECTED = {p.stem: json.loads(p.read_text()) for p in sorted((ROOT / "tests" / "expected").glob("*.json"))}


def assert_expected(exercise: str, found: dict) -> None:
    expected = EXPECTED[exercise]
    assert set(found) == set(expected["students"])
    for student, want in expected["students"].items():
        got = found[student]
        assert (got["score"], got["max_score"]) == (want["score"], expected["max_score"]), (student, got["reason"])
        assert want["reason"] in got["reason"], (student, got["reason"])
        codes = {grade_id: cell["codes"] for grade_id, cell in got["cells"].items() if cell["codes"]}
        assert codes == want.get("codes", codes), (student, codes)


@pytest.mark.parametrize("exercise", sorted(set(EXPECTED) - {"ex01"}))
def test_samples_get_their_expected_scores(exercise, tmp_path, pool):
    course = copy_course(tmp_path / "course")
    inbox = shutil.copytree(ROOT / "autograders" / "samples" / exercise, course / "inbox")
    assert_expected(exercise, {s: r.to_json() for s, r in grade_in_process(course, exercise, inbox, pool).items()})
