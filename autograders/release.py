"""Generate an exercise's student version with nbgrader, then prove the release is right.

The proof, in a throw-away copy of the course so the real gradebook is never touched:
1. exercises/<ex>/ is byte for byte what nbgrader generates from solutions/<ex>/;
2. the solution autogrades to full marks, and the blank release to 0 on every test cell;
3. no line of a hidden test (or of a solution) appears anywhere under exercises/<ex>/;
4. every hidden test hands its answers to the grader (utils.grading.graded), which re-checks them.
"""

from __future__ import annotations

import filecmp
import re
import shutil
import tempfile
from pathlib import Path

import nbformat

from autograders.course import CONFIG_FILE, generate_release, source_notebook
from autograders.grade import grade

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


def verify(root: Path, exercise: str) -> list[str]:
    """Check the committed release of `exercise`; return what is wrong (empty when all is right)."""
    source = source_notebook(root, exercise)
    release = root / "exercises" / exercise
    problems = leaks(source, release) if release.is_dir() else []
    with tempfile.TemporaryDirectory(prefix=f"course-release-{exercise}-") as tmp:
        copy = Path(tmp)
        shutil.copy(root / CONFIG_FILE, copy / CONFIG_FILE)
        shutil.copytree(source.parent, copy / "solutions" / exercise)
        fresh = generate_release(copy, exercise)
        problems += [f"exercises/{exercise}/{d}" for d in _differences(fresh, release)]
        if problems and not release.is_dir():
            problems = [f"exercises/{exercise}/ is missing: run `course release {exercise}`"]
        results = {r.student: r for r in grade(copy, exercise, {"solution": source, "blank": fresh / source.name})}
    for cell, (score, full) in results["solution"].cells.items():
        if score != full:
            problems.append(f"the solution scores {score:g}/{full:g} on {cell}: {results['solution'].reason}")
    for cell, (score, full) in results["blank"].cells.items():
        if score != 0:
            problems.append(f"the blank release scores {score:g}/{full:g} on {cell}: a test that passes unanswered")
    if not results["solution"].cells:
        problems.append(f"the solution could not be graded: {results['solution'].reason}")
    problems += _unchecked_hidden_tests(source)
    return problems


def _unchecked_hidden_tests(source: Path) -> list[str]:
    """Test cells whose hidden tests do not hand their answers to the grader (utils.grading.graded)."""
    from autograders.trusted import HIDDEN, hidden_tests

    checked = hidden_tests(source)
    found = []
    for cell in nbformat.read(source, as_version=4).cells:
        grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        if HIDDEN.search(cell.source) and grade_id not in checked:
            found.append(f"the hidden tests of {grade_id} run only in the student's kernel: "
                         "end them with utils.grading.graded(...) so the grader checks the answers in its own process")
    return found
