"""The grading machinery behind the `course` command: release, grade, feedback, export."""
