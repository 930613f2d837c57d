"""`course similar EX`: pairs of students whose code is near-identical once names and formatting are set aside,
with the matching code side by side on one HTML page.

The detector is copydetect (https://github.com/blingenf/copydetect), the winnowing of MOSS (Schleimer, Wilkerson
and Aiken, SIGMOD 2003). What is compared is the code each student wrote: every code cell of the submission, tagged
or not, in the notebook's order, less the cells that nbgrader's autograde overwrites with the instructor's version
before anything runs (those whose grade_id names a locked cell of the source notebook: the tests, the setup). The
cell tags are the student's to change, so they never decide what is compared: copied code in a new, untagged cell,
or in a cell whose solution tag was deleted, counts as any other. Each submission's code becomes one Python text;
its tokens are filtered (every name becomes V, F or O, strings S; whitespace and comments are dropped) and every
run of NOISE filtered characters is fingerprinted.

The rule (is_pair): two submissions are a pair when at least THRESHOLD (80%) of either one's fingerprinted code is
found in the other's (the larger of the two shares), in a match of at least MIN_MATCH (200) filtered characters,
about ten lines of code. The larger share, because code added to one side (an unused function, scratch work)
lowers the share of that side found in the other, never the share of the other side found in it; every pair that
the earlier rule (both shares at least 80%) found is still found. MIN_MATCH keeps short tasks from pairing: the few
lines that every right answer to a short task shares are no evidence (on the samples of ex01 to ex05, honest
students share at most 144 filtered characters).

The course's own code never counts as a match: every code cell of the release (the skeleton every student starts
from) and of the instructor's solution notebook (model answer and tests) is boilerplate, and its fingerprints are
taken out of every submission before any comparison. So students who kept the given code, pasted the tests into a
cell of their own, or wrote what the model answer writes, are not paired for it; a submission that is the model
answer word for word holds nothing left to compare (and two students who both copied a leaked model answer are
never paired: no pair is no proof that nobody copied).

One submission never stops the class: a notebook that cannot be read, or that holds more than MAX_CODE characters
of code or MAX_FILE bytes (fingerprinting costs about 200 MB of memory per MB of code), is listed as not compared,
with the reason, for the instructor to look at by hand, and the others are compared. Names and code reach the page
and the terminal escaped (a file name that is not UTF-8, a lone surrogate in a cell), and the page replaces the
old one only once it is whole.
"""

from __future__ import annotations

import html
import io
import os
import tempfile
import time
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path

import nbformat
import numpy as np

from autograders.collect import Collection
from autograders.course import Course, Exercise
from autograders.results import printable

NOISE = 25  # filtered characters: copydetect's default noise threshold (shorter matches are commonplace)
THRESHOLD = 0.8  # the share of one's fingerprinted code found in the other's, the larger of the two: near-identical
MIN_MATCH = 200  # filtered characters of matching code of their own, at the least
MAX_CODE = 200_000  # characters of code per student: ten times a long solution, about 1 s and 50 MB to fingerprint
MAX_FILE = 50_000_000  # bytes of notebook read per student (outputs and images included)


@dataclass
class Pair:
    """Two students whose code matches: how much of each one's code the other holds, and where."""

    first: str
    second: str
    similarity: tuple[float, float]  # the share of first's code found in second's, and of second's in first's
    tokens: int  # matching filtered characters
    code: tuple[str, str]
    slices: tuple[np.ndarray, np.ndarray]  # where the matches lie in each code: starts (row 0), ends (row 1)


@dataclass
class Similar:
    """What `course similar` found among one exercise's submissions."""

    exercise: str
    pairs: list[Pair] = field(default_factory=list)  # most similar first
    students: list[str] = field(default_factory=list)  # those compared
    files: dict[str, str] = field(default_factory=dict)  # each compared student's file name, printable
    skipped: list[str] = field(default_factory=list)  # "file or student: why" for each file not compared, printable
    seconds: float = 0.0


@dataclass(frozen=True)
class Given:
    """The course's own code for one exercise: never evidence that two students worked together."""

    source: nbformat.NotebookNode  # the instructor's notebook: it says which cells autograde overwrites
    cells: frozenset[str]  # every code cell of the release and of the solution, stripped
    fingerprints: frozenset  # their fingerprints


class NotCompared(Exception):
    """A submission that is left out of the comparison; the message says why, for the instructor."""


# ---- what is compared


def _nbgrader(cell) -> dict:
    """A cell's nbgrader metadata: {} where there is none, or where the file holds something else there."""
    metadata = cell.get("metadata")
    found = metadata.get("nbgrader") if isinstance(metadata, dict) else None
    return found if isinstance(found, dict) else {}


def _grade_id(cell) -> str | None:
    grade_id = _nbgrader(cell).get("grade_id")
    return grade_id if isinstance(grade_id, str) else None


def _grade_ids(cells: list) -> list[str | None] | None:
    """Each cell's grade_id as autograde reads it, after nbgrader's DeduplicateIds: of several tagged cells (grade,
    solution or locked) that claim one grade_id only the last keeps it, so a test's id copied onto a cell of one's
    own does not hide that cell. None where nbgrader would fail on the tags: autograde then refuses the file.

    Written out here, not imported: importing nbgrader costs `course similar` a second.
    """
    seen, ids = set(), []
    for cell in reversed(cells):
        metadata = cell.get("metadata", {})
        if not isinstance(metadata, dict) or not isinstance(metadata.get("nbgrader", {}), dict):
            return None
        tags = _nbgrader(cell)
        grade_id = tags.get("grade_id")
        if tags.get("grade") or tags.get("solution") or tags.get("locked"):
            if not isinstance(grade_id, str):
                return None
            grade_id = None if grade_id in seen else grade_id
            seen.add(tags["grade_id"])
        ids.append(grade_id if isinstance(grade_id, str) else None)
    return ids[::-1]


def student_code(notebook: nbformat.NotebookNode, source: nbformat.NotebookNode, given: frozenset[str] = frozenset()) -> str:
    """The code of every cell that runs as the notebook has it, one after the other, less the cells in `given`.

    A cell whose grade_id names a locked cell of the source notebook (a test, the setup) is left out: autograde
    (nbgrader's OverwriteCells) puts the instructor's version back into it, so its text never runs. Every other
    cell counts, whatever its tags say: they are the student's to change. A cell that is word for word one of
    the course's (`given`) is left out too: kept as given, it is nobody's own work.
    """
    in_source = {_grade_id(cell): cell for cell in source.cells if _grade_id(cell)}
    ids = _grade_ids(notebook.cells)
    if ids is None:  # tags nbgrader cannot read: nothing is put back, every cell is read as it is
        ids, in_source = [None] * len(notebook.cells), {}
    kept = []
    for cell, grade_id in zip(notebook.cells, ids):
        original = in_source.get(grade_id)
        if original is not None and _nbgrader(original).get("locked"):
            continue
        kind = original.cell_type if original is not None else cell.get("cell_type")  # OverwriteCells sets it so
        text = cell.get("source")
        if kind == "code" and isinstance(text, str) and text.strip() and text.strip() not in given:
            kept.append(text.rstrip())
    return "\n\n".join(kept) + "\n"


def _fingerprint(code: str, boilerplate: frozenset = frozenset()):
    """copydetect's fingerprint of a text (every run of NOISE filtered characters), less the boilerplate's.

    The boilerplate is taken out here rather than by copydetect, whose removal keeps a fingerprint that occurs
    twice in a text (numpy's intersect1d told that the hashes are unique).
    """
    from copydetect.detector import CodeFingerprint
    from copydetect.utils import get_token_coverage

    found = CodeFingerprint("submission.py", NOISE, 1, None, language="python", fp=io.StringIO(code))
    kept = {h: at for h, at in found.hash_idx.items() if h not in boilerplate}
    found.hashes, found.hash_idx = set(kept), kept
    found.token_coverage = get_token_coverage(kept, NOISE, len(found.filtered_code))
    return found


def given_code(course: Course, exercise: Exercise) -> Given:
    """The course's code for this exercise: every code cell of the release and of the solution notebook, each
    alone (a test pasted into a cell of one's own) and as student_code reads the notebook (the given skeleton)."""
    notebooks = [exercise.notebook]
    release = course.release_folder(exercise.name) / exercise.source.name
    if release.is_file():
        notebooks.append(nbformat.read(release, as_version=4))
    cells = [c.source for nb in notebooks for c in nb.cells if c.cell_type == "code" and c.source.strip()]
    texts = cells + [student_code(nb, exercise.notebook) for nb in notebooks]
    fingerprints = frozenset(h for text in texts for h in _fingerprint(text).hashes)
    return Given(exercise.notebook, frozenset(c.strip() for c in cells), fingerprints)


def _escaped(code: str) -> str:
    """The code with what UTF-8 cannot hold (a lone surrogate from the notebook's JSON) written out as \\udXXX:
    what is compared is what the page shows."""
    return code.encode("utf-8", "backslashreplace").decode("utf-8")


def code_of(path: Path, given: Given) -> str:
    """The code a submission compares with the others', or NotCompared saying why it cannot be."""
    size = path.stat().st_size
    if size > MAX_FILE:
        raise NotCompared(f"{size / 1e6:.0f} MB, over the cap of {MAX_FILE / 1e6:.0f} MB per notebook: look at it by hand")
    try:
        notebook = nbformat.read(path, as_version=4)
    except Exception as error:  # an unreadable notebook is the grader's business: say so and go on
        raise NotCompared(f"could not be read ({type(error).__name__})") from None
    code = _escaped(student_code(notebook, given.source, given.cells))
    if len(code) > MAX_CODE:  # the time and memory of fingerprinting grow with the code: one upload must not cost all
        raise NotCompared(f"{len(code):,} characters of code, over the cap of {MAX_CODE:,}: look at it by hand")
    return code


# ---- the comparison


def is_pair(similarity: tuple[float, float], tokens: int, threshold: float = THRESHOLD) -> bool:
    """Whether two codes are near-identical: either one found in the other, in a match long enough to mean it.

    The larger share decides, since padding one side (dead code, scratch cells) lowers only the share of that
    side; the length of the match keeps the few lines that every right answer to a short task has from pairing.
    """
    return max(similarity) >= threshold and tokens >= MIN_MATCH


def _compared(found: Similar, submissions: dict[str, Path], given: Given) -> dict:
    """Each student's code and fingerprint; a submission that cannot be compared costs only its student, with a note."""
    prints = {}
    for student, path in sorted(submissions.items()):
        try:
            code = code_of(path, given)
            prints[student] = (code, _fingerprint(code, given.fingerprints))
        except NotCompared as why:
            found.skipped.append(printable(f"{student}: {path.name} {why}"))
        except Exception as error:  # copydetect or the file system failed on this one: the others still count
            found.skipped.append(printable(f"{student}: {path.name} could not be compared ({type(error).__name__})"))
        else:
            found.files[student] = printable(path.name)
    return prints


def find_similar(course: Course, exercise_name: str, submissions: Collection | dict[str, Path],
                 threshold: float = THRESHOLD) -> Similar:
    """Compare every pair of submissions; return the pairs that is_pair holds near-identical.

    Given collect's Collection, its notes (a second notebook of one student, a file that is not a notebook) come
    first among the skipped, as `course grade` prints them."""
    from copydetect.detector import compare_files

    started = time.perf_counter()
    exercise = course.exercise(exercise_name)
    found = Similar(exercise.name)
    if isinstance(submissions, Collection):
        found.skipped.extend(printable(problem) for problem in submissions.problems)
        submissions = submissions.submissions
    prints = _compared(found, submissions, given_code(course, exercise))
    found.students = sorted(prints)
    for first, second in combinations(found.students, 2):
        tokens, similarity, slices = compare_files(prints[first][1], prints[second][1])
        if is_pair(similarity, tokens, threshold):
            found.pairs.append(Pair(first, second, (float(similarity[0]), float(similarity[1])), int(tokens),
                                    (prints[first][0], prints[second][0]), slices))
    found.pairs.sort(key=lambda p: (-max(p.similarity), -min(p.similarity), p.first, p.second))
    found.seconds = time.perf_counter() - started
    return found


# ---- the page


def _marked(code: str, slices: np.ndarray) -> str:
    """The code as HTML, the matching stretches in <mark>."""
    from copydetect.utils import highlight_overlap

    if slices.size == 0:
        return html.escape(code)
    marked, _ = highlight_overlap(code, slices, "<mark>", "</mark>", escape_html=True)
    return marked


STYLE = """
body { font: 15px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 1400px; padding: 0 1em; color: #222; }
h1 { font-size: 1.6em; } h2 { font-size: 1.2em; margin-top: 2em; }
.pair { display: grid; grid-template-columns: minmax(0, 1fr) minmax(0, 1fr); gap: 1em; }
pre { background: #f7f7f7; border: 1px solid #ddd; padding: .6em; overflow-x: auto; font-size: 12px; line-height: 1.35; }
mark { background: #ffe08a; }
.muted { color: #666; }
"""


def page(found: Similar, threshold: float = THRESHOLD) -> str:
    """One self-contained HTML page: each pair's code side by side, the matching stretches marked."""
    title = html.escape(printable(found.exercise))
    parts = [f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>Similar submissions: {title}</title>"
             f"<style>{STYLE}</style></head><body>",
             f"<h1>Similar submissions: {title}</h1>",
             f"<p>{len(found.students)} submissions compared, {len(found.pairs)} pair(s) where at least {threshold:.0%} "
             f"of one's code is in the other's once names and formatting are set aside, in a match of {MIN_MATCH} "
             f"filtered characters or more (copydetect, {NOISE}-character fingerprints). Every code cell a student ran "
             f"is compared, tagged or not, except the tests. The release's code and the instructor's solution never "
             f"count as a match, so two students who both copied the model answer are not paired: no pair is no "
             f"proof that nobody copied.</p>"]
    if not found.pairs:
        parts.append("<p><strong>No similar pair.</strong></p>")
    for pair in found.pairs:
        parts.append(_pair_section(found, pair))
    if found.skipped:
        parts.append("<h2>Not compared</h2><ul>" + "".join(f"<li>{html.escape(s)}</li>" for s in found.skipped) + "</ul>")
    parts.append(f"<p class='muted'>Compared in {found.seconds:.2f} s.</p></body></html>")
    return "\n".join(parts)


def _pair_section(found: Similar, pair: Pair) -> str:
    """One pair: the shares both ways, then each side's file and code."""
    names = tuple(html.escape(printable(n)) for n in (pair.first, pair.second))
    parts = [f"<section class='pair-section' data-first='{names[0]}' data-second='{names[1]}'>"
             f"<h2>{names[0]} and {names[1]}: {pair.similarity[0]:.0%} of {names[0]}'s code is in "
             f"{names[1]}'s, {pair.similarity[1]:.0%} the other way</h2><div class='pair'>"]
    for student, name, code, slices in zip((pair.first, pair.second), names, pair.code, pair.slices):
        file = html.escape(found.files.get(student, ""))
        parts.append(f"<div><h3>{name} <span class='muted'>{file}</span></h3><pre>{_marked(code, slices)}</pre></div>")
    parts.append("</div></section>")
    return "".join(parts)


def write(course: Course, found: Similar) -> Path:
    """Write the page to <course work folder>/similar/<exercise>.html and return its path. The page is built whole
    first and takes the old one's place in one step: a failure leaves the old page, never half of one."""
    path = course.work / "similar" / f"{found.exercise}.html"
    path.parent.mkdir(parents=True, exist_ok=True)
    text = page(found).encode("utf-8", "backslashreplace")
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "wb") as f:
            os.fchmod(f.fileno(), 0o644)  # a page to open, as the old write_text left it
            f.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path
