"""`course similar EX`: pairs of students whose solution cells are near-identical once names and formatting are
set aside, with the matching code side by side on one HTML page.

The detector is copydetect (https://github.com/blingenf/copydetect), the winnowing of MOSS (Schleimer, Wilkerson
and Aiken, SIGMOD 2003): each submission's solution cells (nbgrader's `solution` cells, in the exercise's order)
become one Python text; its tokens are filtered (every name becomes V, F or O, strings S; whitespace and comments
are dropped) and every run of NOISE filtered characters is fingerprinted. Two submissions are a pair when each
holds at least THRESHOLD of the other's fingerprinted code, and the match is at least MIN_MATCH filtered
characters long (about ten lines of code): the few lines that every right answer to a short task shares
are no evidence.

The course's own code never counts as a match: the release's cells (the skeleton every student starts from)
and the instructor's solution cells are boilerplate, and their fingerprints are taken out of every
submission before any comparison. So students who kept the given code, or wrote what the model answer
writes, are not paired for it; a submission that is the model answer word for word holds nothing left
to compare.
"""

from __future__ import annotations

import html
import io
import time
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path

import nbformat
import numpy as np

from autograders.course import Course, Exercise

NOISE = 25  # filtered characters: copydetect's default noise threshold (shorter matches are commonplace)
THRESHOLD = 0.8  # the share of each one's fingerprinted code found in the other: near-identical
MIN_MATCH = 200  # filtered characters of matching code of their own, at the least


@dataclass
class Pair:
    """Two students whose solution cells match: how much of each one's code the other holds, and where."""

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
    skipped: list[str] = field(default_factory=list)  # "student: why" for each notebook that could not be read
    seconds: float = 0.0


def solution_code(notebook: nbformat.NotebookNode) -> str:
    """The solution cells of a notebook (nbgrader metadata `solution: true`), one after the other."""
    cells = [c for c in notebook.cells if c.cell_type == "code" and c.get("metadata", {}).get("nbgrader", {}).get("solution")]
    return "\n\n".join(c.source.rstrip() for c in cells) + "\n"


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


def boilerplate_of(course: Course, exercise: Exercise) -> frozenset:
    """Every fingerprint of the course's own code for this exercise: the release's cells and the solution's."""
    release = course.release_folder(exercise.name) / exercise.source.name
    texts = [solution_code(exercise.notebook)]
    if release.is_file():
        texts.append(solution_code(nbformat.read(release, as_version=4)))
    return frozenset(h for text in texts for h in _fingerprint(text).hashes)


def find_similar(course: Course, exercise_name: str, submissions: dict[str, Path], threshold: float = THRESHOLD) -> Similar:
    """Compare every pair of submissions; return the pairs that hold at least `threshold` of each other's code."""
    from copydetect.detector import compare_files

    started = time.perf_counter()
    exercise = course.exercise(exercise_name)
    boilerplate = boilerplate_of(course, exercise)
    found = Similar(exercise.name)
    prints = {}
    for student, path in sorted(submissions.items()):
        try:
            code = solution_code(nbformat.read(path, as_version=4))
        except Exception as error:  # an unreadable notebook is the grader's business: say so and go on
            found.skipped.append(f"{student}: {path.name} could not be read ({type(error).__name__})")
            continue
        prints[student] = (code, _fingerprint(code, boilerplate))
    found.students = sorted(prints)
    for first, second in combinations(found.students, 2):
        tokens, similarity, slices = compare_files(prints[first][1], prints[second][1])
        if min(similarity) >= threshold and tokens >= MIN_MATCH:
            found.pairs.append(Pair(first, second, (float(similarity[0]), float(similarity[1])), int(tokens),
                                    (prints[first][0], prints[second][0]), slices))
    found.pairs.sort(key=lambda p: (-min(p.similarity), p.first, p.second))
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
    """One self-contained HTML page: each pair's solution cells side by side, the matching stretches marked."""
    parts = [f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>Similar submissions: {found.exercise}</title>"
             f"<style>{STYLE}</style></head><body>",
             f"<h1>Similar submissions: {found.exercise}</h1>",
             f"<p>{len(found.students)} submissions compared, {len(found.pairs)} pair(s) whose solution cells hold at "
             f"least {threshold:.0%} of each other's code once names and formatting are set aside, in a match of "
             f"{MIN_MATCH} filtered characters or more (copydetect, {NOISE}-character fingerprints). The release's code "
             f"and the instructor's solution never count as a match.</p>"]
    if not found.pairs:
        parts.append("<p><strong>No similar pair.</strong></p>")
    for pair in found.pairs:
        names = tuple(html.escape(n) for n in (pair.first, pair.second))
        parts.append(f"<section class='pair-section' data-first='{names[0]}' data-second='{names[1]}'>"
                     f"<h2>{names[0]} and {names[1]}: {pair.similarity[0]:.0%} of {names[0]}'s code is in "
                     f"{names[1]}'s, {pair.similarity[1]:.0%} the other way</h2><div class='pair'>")
        for name, code, slices in zip(names, pair.code, pair.slices):
            parts.append(f"<div><h3>{name}</h3><pre>{_marked(code, slices)}</pre></div>")
        parts.append("</div></section>")
    if found.skipped:
        parts.append("<h2>Not compared</h2><ul>" + "".join(f"<li>{html.escape(s)}</li>" for s in found.skipped) + "</ul>")
    parts.append(f"<p class='muted'>Compared in {found.seconds:.2f} s.</p></body></html>")
    return "\n".join(parts)


def write(course: Course, found: Similar) -> Path:
    """Write the page to <course work folder>/similar/<exercise>.html; return its path."""
    path = course.work / "similar" / f"{found.exercise}.html"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page(found))
    return path
