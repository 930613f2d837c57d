"""The course's own pre-commit checks (.pre-commit-config.yaml), runnable alone too:

    python -m autograders.hooks lectures-executed lectures/*.ipynb
    python -m autograders.hooks exercises-in-sync
"""

from __future__ import annotations

import sys

import nbformat


def lectures_executed(paths: list[str]) -> list[str]:
    """Lectures keep their outputs: every code cell executed, in order, as Restart & Run All leaves them."""
    problems = []
    for path in paths:
        counts = [c.execution_count for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]
        if counts != list(range(1, len(counts) + 1)):
            missing = sum(c is None for c in counts)
            problems.append(f"{path}: not executed top to bottom ({missing} of {len(counts)} code cells never ran): "
                            "re-execute it (Kernel > Restart Kernel and Run All Cells) and save it with its outputs")
    return problems


def exercises_in_sync() -> list[str]:
    """exercises/ is what nbgrader generates from solutions/, and every badge and setup cell follows [tool.course]."""
    from autograders import links
    from autograders.course import Course
    from autograders.release import in_sync

    course = Course.find()
    problems = [f"{name}: {p}" for name in course.exercise_names() for p in in_sync(course, name)]
    return problems + links.check(course)


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("lectures-executed", "exercises-in-sync"):
        print(__doc__, file=sys.stderr)
        return 2
    problems = lectures_executed(argv[1:]) if argv[0] == "lectures-executed" else exercises_in_sync()
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems and argv[0] == "exercises-in-sync":
        print("fix: `course links`, then `course release`", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
