"""Feedback pages for students: each test's points and the grader's message, never a hidden test's code.

`course grade` stores a graded notebook that is already safe to hand back (judge.py): test cells hold
the grader's verdict, and no output of the student's process from after the first hidden test. nbgrader's
own GenerateFeedback then removes the hidden tests' code (ClearHiddenTests) and writes the HTML.
"""

from __future__ import annotations

from nbconvert.preprocessors import Preprocessor
from traitlets import Bool

from autograders.course import Course, quiet, run_nbgrader


class HideTestTracebacks(Preprocessor):
    """Shorten each test cell's error to `Name: message`.

    A traceback quotes the lines around the failure, hidden tests included (nbgrader issue #917). The
    notebooks `course grade` writes hold no such traceback; this keeps the stock `nbgrader autograde`
    followed by `nbgrader generate_feedback` (nbgrader_config.py enables it) from showing one.
    """

    enabled = Bool(True, help="nbconvert preprocessors are off unless enabled").tag(config=True)

    def preprocess_cell(self, cell, resources, index):
        if cell.get("metadata", {}).get("nbgrader", {}).get("grade"):
            for output in cell.get("outputs", []):
                if output.get("output_type") == "error":
                    output["traceback"] = [f"{output.get('ename', 'Error')}: {output.get('evalue', '')}"]
        return cell, resources


def generate(course: Course, exercise: str) -> list:
    """Write one HTML page per graded student; return their paths."""
    with quiet():
        result = course.api().generate_feedback(exercise, force=True)
    run_nbgrader(result, f"generate feedback for {exercise}")
    return sorted(course.feedback_folder().glob(f"*/{exercise}/*.html"))
