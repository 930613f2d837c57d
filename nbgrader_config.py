"""nbgrader settings, so the stock commands work from the repository root with no extra flags.

    nbgrader generate_assignment ex01   # solutions/ex01/ -> exercises/ex01/
    nbgrader autograde ex01             # coursework/submitted/<student>/ex01/ -> coursework/autograded/
"""

from pathlib import Path

ROOT = Path(__file__).resolve().parent
WORK = "coursework"  # submissions, autograded copies, feedback and the gradebook (git-ignored)

(ROOT / WORK).mkdir(exist_ok=True)  # sqlite cannot create the gradebook in a missing folder

c = get_config()  # noqa: F821 (defined by nbgrader when it loads this file)

c.CourseDirectory.course_id = "autodiff-course"
c.CourseDirectory.root = str(ROOT)
c.CourseDirectory.source_directory = "solutions"
c.CourseDirectory.release_directory = "exercises"
c.CourseDirectory.submitted_directory = f"{WORK}/submitted"
c.CourseDirectory.autograded_directory = f"{WORK}/autograded"
c.CourseDirectory.feedback_directory = f"{WORK}/feedback"
c.CourseDirectory.db_url = f"sqlite:///{ROOT / WORK / 'gradebook.db'}"

# Each cell gets 30 s: enough for every exercise on a laptop CPU, short enough that an
# infinite loop costs one cell, not the whole batch.
c.Execute.timeout = 30

# Feedback shows each test's result and message, never the hidden tests' source.
c.GenerateFeedback.preprocessors = [
    "nbgrader.preprocessors.GetGrades",
    "nbgrader.preprocessors.ClearHiddenTests",
    "autograders.feedback.HideTestTracebacks",
    "nbconvert.preprocessors.CSSHTMLHeaderPreprocessor",
]
