"""Tell whose notebook is whose in a folder of submissions, as a learning platform hands them out."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

_COPY_OF = re.compile(r"^copy of\s+", re.IGNORECASE)
_DUPLICATE_SUFFIX = re.compile(r"\s*\(\d+\)$")  # "ex01 (1)", added by browsers and drives
_NAME_IN_PARENS = re.compile(r"\(([^()]*[^()\d\s][^()]*)\)$")  # "Copy of ex01 (bob)"
# The platforms' own download names, whose student part the platform wrote (the rest is the student's file name):
# Canvas' "Download Submissions": <sortable name>[_LATE]_<user id>_<submission id>_<file name>;
# Moodle's "Download all submissions": <Full Name>_<participant id>_assignsubmission_file_[<file name>] (a folder
# of that name, or a file's name).
_CANVAS = re.compile(r"^(?P<student>[a-z][a-z0-9-]*?)(?:_late)?_\d+_\d+_.+$", re.IGNORECASE)
_MOODLE = re.compile(r"^(?P<student>[^_/]+)_\d+_assignsubmission_[a-z]+_")


@dataclass
class Collection:
    """The notebook chosen for each student, plus what could not be used, with the reason why."""

    submissions: dict[str, Path] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def clean_id(text: str) -> str:
    """A student id nbgrader can use as a folder name: letters, digits, '.', '_' and '-'."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text.strip()).strip("._")


def student_id(path: Path, folder: Path, exercise: str) -> str | None:
    """The student a notebook belongs to, from its folder or its file name; None if it does not say."""
    relative = path.relative_to(folder)
    platform = _MOODLE.match(relative.parts[0]) or (_CANVAS.match(path.name) if len(relative.parts) == 1 else None)
    if platform:  # the platform's part wins over anything the student put in the file's name ("ex01 (alice)")
        return clean_id(platform.group("student")) or None
    if len(relative.parts) > 1:  # alice/ex01.ipynb, alice/submission/Copy of ex01.ipynb
        return clean_id(relative.parts[0]) or None
    stem = path.stem.strip()
    named = _NAME_IN_PARENS.search(stem)
    if named:  # Copy of ex01 (bob).ipynb
        return clean_id(named.group(1)) or None
    stem = _DUPLICATE_SUFFIX.sub("", _COPY_OF.sub("", stem))
    # alice.ipynb, alice_ex01.ipynb, ex01-alice.ipynb: whatever is left once the exercise's name is gone
    rest = re.sub(rf"(^|[\s_-]){re.escape(exercise)}($|[\s_-])", " ", stem, flags=re.IGNORECASE)
    return clean_id(rest) or None


def collect(folder: Path, exercise: str) -> Collection:
    """Map every student to one notebook under `folder`, and say why any file was not used."""
    if not folder.is_dir():
        raise FileNotFoundError(f"no folder of submissions at {folder}")
    found: dict[str, list[Path]] = {}
    result = Collection()
    for path in sorted(folder.rglob("*")):
        if not path.is_file() or ".ipynb_checkpoints" in path.parts or path.name.startswith("."):
            continue
        if path.suffix.lower() != ".ipynb":
            result.problems.append(f"{path.relative_to(folder)}: not a notebook, skipped")
            continue
        student = student_id(path, folder, exercise)
        if student is None:
            result.problems.append(
                f"{path.relative_to(folder)}: cannot tell whose notebook this is; "
                f"put it in a folder named after the student, or name it <student>.ipynb"
            )
            continue
        found.setdefault(student, []).append(path)
    for student, paths in sorted(found.items()):
        # Several notebooks for one student (a re-upload, "ex01 (1).ipynb"): grade the newest.
        newest = max(paths, key=lambda p: (p.stat().st_mtime, str(p)))
        result.submissions[student] = newest
        for other in paths:
            if other != newest:
                result.problems.append(
                    f"{other.relative_to(folder)}: {student} handed in {len(paths)} notebooks; "
                    f"graded the newest, {newest.relative_to(folder)}"
                )
    return result
