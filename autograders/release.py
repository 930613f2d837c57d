"""Generate an exercise's student version with nbgrader, then prove the release is right.

The proof, in a throw-away copy of the course so the real gradebook is never touched:
1. exercises/<ex>/ is byte for byte what nbgrader generates from solutions/<ex>/;
2. the solution autogrades to full marks, and the blank release to 0 on every test cell;
3. no line of a hidden test (or of a solution) appears anywhere under exercises/<ex>/;
4. every hidden test hands its answers to the grader (utils.grading.graded), which re-checks them;
5. every rule a test cell declares is one the rules check knows, and the solution breaks none.
"""

from __future__ import annotations

import contextlib
import filecmp
import re
import shutil
import tempfile
from pathlib import Path

import nbformat

from autograders.course import CONFIG_FILE, Course, Exercise
from autograders.pipeline import grade
from autograders.pool import Pool
from autograders.rules import KNOWN_RULES

_BLOCK = re.compile(r"### BEGIN (HIDDEN TESTS|SOLUTION)\n(.*?)### END \1", re.DOTALL)


def _differences(expected: Path, actual: Path, prefix: str = "") -> list[str]:
    """Files that differ between two folders, as paths relative to them."""
    if not actual.is_dir():
        return [f"{prefix or '.'}: missing"]
    cmp = filecmp.dircmp(expected, actual, ignore=[".ipynb_checkpoints", "__pycache__"])
    found = [f"{prefix}{name}: missing" for name in cmp.left_only]
    found += [f"{prefix}{name}: not generated from solutions/" for name in cmp.right_only]
    _, mismatch, errors = filecmp.cmpfiles(expected, actual, cmp.common_files, shallow=False)
    found += [f"{prefix}{name}: differs" for name in mismatch + errors]
    for sub in cmp.common_dirs:
        found += _differences(expected / sub, actual / sub, f"{prefix}{sub}/")
    return found


def secret_lines(source: Path) -> dict[str, str]:
    """Lines inside hidden-test and solution blocks that the visible part never shows, with their kind."""
    cells = nbformat.read(source, as_version=4).cells
    visible = "\n".join(_BLOCK.sub("", cell.source) for cell in cells)
    secrets = {}
    for cell in cells:
        for kind, block in _BLOCK.findall(cell.source):
            for line in block.splitlines():
                line = line.strip()
                if len(line) >= 12 and line not in visible:
                    secrets[line] = "hidden test" if kind == "HIDDEN TESTS" else "solution"
    return secrets


def leaks(source: Path, release: Path) -> list[str]:
    """Each hidden-test or solution line that appears in a file under `release`."""
    secrets = secret_lines(source)
    markers = ("BEGIN HIDDEN TESTS", "END HIDDEN TESTS", "BEGIN SOLUTION", "END SOLUTION")
    found = []
    for path in sorted(p for p in release.rglob("*") if p.is_file()):
        text = path.read_text(errors="replace")
        if path.suffix == ".ipynb":  # compare with the cells as a student sees them, not escaped JSON
            text = "\n".join(str(cell) for cell in nbformat.reads(text, as_version=4).cells)
        for line, kind in secrets.items():
            if line in text:
                found.append(f"{path.relative_to(release.parent)}: {kind} line leaked: {line}")
        found += [f"{path.relative_to(release.parent)}: marker {m!r} left in" for m in markers if m in text]
    return found


@contextlib.contextmanager
def _fresh_release(course: Course, exercise: str):
    """The exercise's release as nbgrader generates it now, in a throw-away copy of the course: (copy, folder)."""
    source = course.exercise(exercise)
    with tempfile.TemporaryDirectory(prefix=f"course-release-{exercise}-") as tmp:
        shutil.copy(course.root / CONFIG_FILE, Path(tmp) / CONFIG_FILE)
        shutil.copytree(source.source.parent, Path(tmp) / "solutions" / exercise)
        scratch = Course(Path(tmp))
        yield scratch, scratch.generate_release(exercise)


def in_sync(course: Course, exercise: str, fresh: Path | None = None) -> list[str]:
    """What is wrong with the committed release without grading it: not what nbgrader generates, a secret
    line in it, an unknown rule, hidden tests that skip the grader's re-check."""
    source = course.exercise(exercise)
    release = course.release_folder(exercise)
    problems = leaks(source.source, release) if release.is_dir() else []
    if fresh is None:
        with _fresh_release(course, exercise) as (_, generated):
            return in_sync(course, exercise, generated)
    problems += [f"exercises/{exercise}/{d}" for d in _differences(fresh, release)]
    if problems and not release.is_dir():
        problems = [f"exercises/{exercise}/ is missing: run `course release {exercise}`"]
    return problems + unchecked_hidden_tests(source) + unknown_rules(source)


def verify(course: Course, exercise: str, pool: Pool) -> list[str]:
    """Check the committed release of `exercise`; return what is wrong (empty when all is right)."""
    source = course.exercise(exercise)
    with _fresh_release(course, exercise) as (scratch, fresh):
        problems = in_sync(course, exercise, fresh)
        graded = grade(scratch, exercise, {"solution": source.source, "blank": fresh / source.source.name}, pool)
        results = {r.student: r for r in graded}
    for cell, verdict in results["solution"].cells.items():
        if verdict.score != verdict.max_score:
            problems.append(f"the solution scores {verdict.score:g}/{verdict.max_score:g} on {cell}: {verdict.reason}")
    for cell, verdict in results["blank"].cells.items():
        if verdict.score != 0:
            problems.append(f"the blank release scores {verdict.score:g}/{verdict.max_score:g} on {cell}: "
                            "a test that passes unanswered")
    if not results["solution"].ran:
        problems.append(f"the solution could not be graded: {results['solution'].reason}")
    for flag in results["solution"].flags:
        problems.append(f"the solution needs review: {flag.cell} line {flag.line}: {flag.why}")
    return problems


def unchecked_hidden_tests(exercise: Exercise) -> list[str]:
    """Test cells whose hidden tests do not hand their answers to the grader (utils.grading.graded)."""
    return [f"the hidden tests of {t.grade_id} run only in the student's kernel: "
            "end them with utils.grading.graded(...) so the grader checks the answers in its own process"
            for t in exercise.tests if t.hidden and not t.records_answers]


def unknown_rules(exercise: Exercise) -> list[str]:
    """Rules declared in the metadata that the rules check does not know, or that name no code."""
    found = []
    for test in exercise.tests:
        for rule in test.rules:
            if rule.get("rule") not in KNOWN_RULES:
                found.append(f"{test.grade_id} declares an unknown rule {rule.get('rule')!r} (known: {', '.join(KNOWN_RULES)})")
            elif not rule.get("in"):
                found.append(f"{test.grade_id} declares {rule['rule']} without naming the code it is for (\"in\": [...])")
    return found
