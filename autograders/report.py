"""`course report [EX]`: what the class got wrong, for the instructor, from the results `course grade` stored.

One self-contained HTML page (figures embedded as PNG, no script, nothing fetched) under the course work
folder, reports/<exercise>.html or reports/class.html for every exercise, and a plain-text summary of the
same for the terminal. Per exercise: the score distribution; each test cell's pass rate and mean points;
the diagnoses counted over the class, largest first, each with what it means and who got it (the codes
the grader recorded: nothing is read back from the reasons' text); notebooks that never ran and why;
submissions flagged for review; manual scores; grading time per submission.

The numbers are computed once (`summarize`) and both the page and the text show them; the page carries
them as data attributes too (data-code, data-count), so that a test can check them against the results.
The figures are deterministic: the same results give the same bytes.
"""

from __future__ import annotations

import base64
import html
import io
import statistics
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from autograders import results as stored
from autograders.course import Course, CourseError, Exercise
from autograders.results import GRADER_CODES, Flag, Result, describe_code


@dataclass
class Diagnosis:
    """One code over the class: what it means, the students who got it, and in which test cells."""

    code: str
    meaning: str
    students: list[str]
    cells: dict[str, int]  # grade_id -> how many students got it there
    example: str  # one reason as the grader gave it (the first student's)

    @property
    def by_grader(self) -> bool:
        """True for the grader's own findings (a rule broken, a time limit, an error's kind), not a check's."""
        return self.code in GRADER_CODES or self.code.startswith("error-")


@dataclass
class CellSummary:
    grade_id: str
    points: float
    passed: int  # students with full points
    graded: int  # students whose notebook ran
    mean: float  # mean points over those

    @property
    def pass_rate(self) -> float:
        return self.passed / self.graded if self.graded else 0.0


@dataclass
class Summary:
    """One exercise's class, in numbers: what the page and the text both show."""

    exercise: str
    max_score: float
    scores: dict[str, float]  # student -> total
    cells: list[CellSummary]
    diagnoses: list[Diagnosis]  # the most students first
    undiagnosed: list[tuple[str, str, str]]  # (student, grade_id, reason): lost points with no code named
    never_ran: list[tuple[str, str]]  # (student, why): notebooks that could not be run at all
    flagged: list[tuple[str, Flag]]
    manual: list[tuple[str, str, float, float, str]]  # (student, grade_id, score, the grader's score, why)
    seconds: dict[str, float]  # student -> seconds in the sandbox
    notes: list[str] = field(default_factory=list)

    @property
    def mean(self) -> float:
        return statistics.fmean(self.scores.values()) if self.scores else 0.0

    @property
    def median(self) -> float:
        return statistics.median(self.scores.values()) if self.scores else 0.0


def load(course: Course, exercise: str) -> list[Result]:
    """Every student's stored result for the exercise, by name."""
    folder = course.results_folder(exercise)
    found = [stored.read(path) for path in sorted(folder.glob("*.json"))] if folder.is_dir() else []
    return [r for r in found if r is not None]


def summarize(exercise: Exercise, results: list[Result]) -> Summary:
    """The class's numbers for one exercise, from its stored results."""
    ran = [r for r in results if r.ran]
    cells = []
    for test in exercise.tests:
        verdicts = [r.cells[test.grade_id] for r in ran if test.grade_id in r.cells]
        cells.append(CellSummary(test.grade_id, test.points, sum(v.score >= v.max_score for v in verdicts), len(verdicts),
                                 statistics.fmean(v.score for v in verdicts) if verdicts else 0.0))
    students: dict[str, list[str]] = {}
    where: dict[str, Counter] = {}
    example: dict[str, str] = {}
    undiagnosed = []
    for r in results:
        for grade_id, cell in r.cells.items():
            if not cell.codes and cell.score < cell.max_score and not cell.manual:
                undiagnosed.append((r.student, grade_id, cell.reason))
            for code in dict.fromkeys(cell.codes):
                if r.student not in students.setdefault(code, []):
                    students[code].append(r.student)
                where.setdefault(code, Counter())[grade_id] += 1
                example.setdefault(code, f"{r.student}, {grade_id}: {cell.reason}")
    order = {grade_id: i for i, grade_id in enumerate(exercise.order)}
    diagnoses = [Diagnosis(code, describe_code(code), sorted(names),
                           dict(sorted(where[code].items(), key=lambda kv: order.get(kv[0], len(order)))), example[code])
                 for code, names in students.items()]
    diagnoses.sort(key=lambda d: (-len(d.students), -sum(d.cells.values()), d.code))
    return Summary(
        exercise=exercise.name,
        max_score=exercise.max_score,
        scores={r.student: r.score for r in results},
        cells=cells,
        diagnoses=diagnoses,
        undiagnosed=undiagnosed,
        never_ran=[(r.student, r.reason) for r in results if not r.ran],
        flagged=[(r.student, f) for r in results for f in r.flags],
        manual=[(r.student, grade_id, c.score, c.auto_score, c.manual_why)
                for r in results for grade_id, c in r.cells.items() if c.manual],
        seconds={r.student: r.seconds for r in results if r.ran},
    )


# ---- the figures: drawn with matplotlib's Agg canvas, without pyplot's global state


def _png(figure) -> str:
    """The figure as a base64 PNG; no timestamp or version in it, so the same figure gives the same bytes."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, metadata={"Software": None})
    return base64.b64encode(buffer.getvalue()).decode()


def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), layout="constrained")
    return figure, figure.subplots()


def figure_scores(s: Summary) -> str:
    figure, ax = _figure(6, 2.8)
    top = int(s.max_score)
    counts = Counter(min(int(score), top) for score in s.scores.values())
    ax.bar(range(top + 1), [counts.get(k, 0) for k in range(top + 1)], color="#4c72b0")
    ax.set_xticks(range(top + 1))
    ax.set_xlabel(f"score (of {s.max_score:g})")
    ax.set_ylabel("students")
    ax.yaxis.get_major_locator().set_params(integer=True)
    ax.set_title(f"{s.exercise}: scores of {len(s.scores)} students (mean {s.mean:.2f}, median {s.median:g})")
    return _png(figure)


def figure_cells(s: Summary) -> str:
    figure, ax = _figure(6, 0.45 * len(s.cells) + 1.2)
    names = [c.grade_id for c in s.cells][::-1]
    rates = [100 * c.pass_rate for c in s.cells][::-1]
    means = [100 * c.mean / c.points if c.points else 0 for c in s.cells][::-1]
    at = range(len(names))
    ax.barh([y + 0.2 for y in at], rates, height=0.4, color="#55a868", label="passed (% of students)")
    ax.barh([y - 0.2 for y in at], means, height=0.4, color="#c44e52", label="mean points (% of the cell's)")
    ax.set_yticks(list(at), names)
    ax.set_xlim(0, 100)
    figure.legend(loc="outside lower center", ncol=2, fontsize=8)
    ax.set_title("each test cell")
    return _png(figure)


def figure_diagnoses(s: Summary, shown: int = 15) -> str:
    top = s.diagnoses[:shown][::-1]
    figure, ax = _figure(6, 0.35 * len(top) + 1.2)
    ax.barh(range(len(top)), [len(d.students) for d in top], color="#8172b2")
    ax.set_yticks(range(len(top)), [d.code for d in top])
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_xlabel("students")
    ax.set_title("diagnoses over the class" + (f" (the {shown} most common)" if len(s.diagnoses) > shown else ""))
    return _png(figure)


def figure_seconds(s: Summary) -> str:
    figure, ax = _figure(6, 2.8 if len(s.seconds) > 40 else 0.3 * len(s.seconds) + 1.2)
    if len(s.seconds) > 40:  # a bar per student stops being readable: their distribution
        ax.hist(list(s.seconds.values()), bins=20, color="#dd8452")
        ax.set_xlabel("seconds in the sandbox")
        ax.set_ylabel("submissions")
    else:
        names = sorted(s.seconds, key=lambda n: (s.seconds[n], n))
        ax.barh(range(len(names)), [s.seconds[n] for n in names], color="#dd8452")
        ax.set_yticks(range(len(names)), names)
        ax.set_xlabel("seconds in the sandbox")
    ax.set_title("grading time per submission")
    return _png(figure)


# ---- the page and the text

STYLE = """
body { font: 15px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 1100px; padding: 0 1em; color: #222; }
h1 { font-size: 1.7em; } h2 { font-size: 1.4em; margin-top: 2.2em; border-bottom: 1px solid #ddd; }
h3 { font-size: 1.1em; margin-top: 1.6em; }
table { border-collapse: collapse; margin: .6em 0; }
td, th { padding: .25em .7em; border-bottom: 1px solid #eee; text-align: left; vertical-align: top; }
th { background: #f5f5f5; } td.n { text-align: right; font-variant-numeric: tabular-nums; }
code { background: #f3f3f3; padding: 0 .25em; white-space: nowrap; } .muted { color: #666; } img { max-width: 100%; }
td.where { white-space: nowrap; font-size: .9em; }
.figures { display: grid; grid-template-columns: minmax(0, 1fr) minmax(0, 1fr); gap: 1em; align-items: start; }
"""


def _e(text: object) -> str:
    return html.escape(str(text))


def _table(head: list[str], rows: list[str]) -> str:
    return "<table><tr>" + "".join(f"<th>{_e(h)}</th>" for h in head) + "</tr>" + "".join(rows) + "</table>"


def section(s: Summary) -> str:
    """One exercise's part of the page."""
    parts = [f"<section class='exercise' data-exercise='{_e(s.exercise)}' data-students='{len(s.scores)}'>",
             f"<h2>{_e(s.exercise)}</h2>",
             f"<p>{len(s.scores)} students; mean {s.mean:.2f} of {s.max_score:g}, median {s.median:g}; "
             f"{sum(v >= s.max_score for v in s.scores.values())} with full marks; {len(s.never_ran)} notebooks never ran; "
             f"{len({n for n, f in s.flagged if f.decision == 'pending'})} awaiting review; "
             f"{len({m[0] for m in s.manual})} with a manual score.</p>"]
    if not s.scores:
        return "\n".join(parts + ["<p>No results yet.</p></section>"])
    parts.append("<div class='figures'>"
                 f"<img alt='score distribution' src='data:image/png;base64,{figure_scores(s)}'>"
                 f"<img alt='pass rate and mean points per test cell' src='data:image/png;base64,{figure_cells(s)}'>"
                 "</div>")
    parts.append("<h3>Test cells</h3>" + _table(["test cell", "points", "passed", "pass rate", "mean points"], [
        f"<tr class='cell' data-cell='{_e(c.grade_id)}' data-passed='{c.passed}' data-graded='{c.graded}' "
        f"data-mean='{c.mean:.4f}'><td><code>{_e(c.grade_id)}</code></td><td class='n'>{c.points:g}</td>"
        f"<td class='n'>{c.passed} of {c.graded}</td><td class='n'>{100 * c.pass_rate:.0f}%</td>"
        f"<td class='n'>{c.mean:.2f}</td></tr>" for c in s.cells]))
    parts.append("<h3>What the class got wrong</h3>")
    if s.diagnoses:
        parts.append("<p class='muted'>The mistakes the checks recognised and the grader's own findings, by the number of "
                     "students who got each, with the test cells where it showed and one reason as the grader gave it.</p>")
        parts.append(f"<img alt='diagnoses over the class' src='data:image/png;base64,{figure_diagnoses(s)}'>")
        parts.append(_table(["diagnosis", "students", "what it means", "who", "where (students)"], [
            f"<tr class='diagnosis' data-code='{_e(d.code)}' data-count='{len(d.students)}' "
            f"data-students='{_e(' '.join(d.students))}'><td><code>{_e(d.code)}</code><br>"
            f"<span class='muted'>{'the grader' if d.by_grader else 'a check'}</span></td>"
            f"<td class='n'>{len(d.students)}</td><td>{_e(d.meaning)}<br><span class='muted'>e.g. {_e(d.example)}</span>"
            f"</td><td>{_e(', '.join(d.students))}</td>"
            f"<td class='where'>{'<br>'.join(f'{_e(g)} ({n})' for g, n in d.cells.items())}</td></tr>"
            for d in s.diagnoses]))
    else:
        parts.append("<p>No diagnosis: nobody lost points to a mistake the checks recognise.</p>")
    if s.undiagnosed:
        parts.append("<h3>Lost points with no diagnosis named</h3>" + _table(["student", "test cell", "reason"], [
            f"<tr class='undiagnosed'><td>{_e(n)}</td><td><code>{_e(g)}</code></td><td>{_e(why)}</td></tr>"
            for n, g, why in s.undiagnosed]))
    parts.append("<h3>Notebooks that never ran</h3>")
    parts.append(_table(["student", "why"], [
        f"<tr class='never-ran' data-student='{_e(n)}'><td>{_e(n)}</td><td>{_e(why)}</td></tr>" for n, why in s.never_ran])
                 if s.never_ran else "<p>None: every notebook ran.</p>")
    parts.append("<h3>Flagged for review by the rules check</h3>")
    parts.append(_table(["student", "where", "why", "decision", "the line"], [
        f"<tr class='flag' data-student='{_e(n)}' data-decision='{_e(f.decision)}'><td>{_e(n)}</td>"
        f"<td>{_e(f.cell)} line {f.line}</td><td>{_e(f.why)}</td><td>{_e(f.decision)}</td><td><code>{_e(f.code)}</code></td></tr>"
        for n, f in s.flagged]) + f"<p class='muted'>Decide with <code>course review {_e(s.exercise)} STUDENT --accept</code> "
        "or <code>--reject</code>.</p>" if s.flagged else "<p>None.</p>")
    parts.append("<h3>Manual scores</h3>")
    parts.append(_table(["student", "test cell", "score", "the grader's", "why"], [
        f"<tr class='manual' data-student='{_e(n)}'><td>{_e(n)}</td><td><code>{_e(g)}</code></td><td class='n'>{score:g}</td>"
        f"<td class='n'>{auto:g}</td><td>{_e(why)}</td></tr>" for n, g, score, auto, why in s.manual])
                 if s.manual else "<p>None.</p>")
    seconds = list(s.seconds.values())
    parts.append("<h3>Grading time per submission</h3>")
    if seconds:
        parts.append(f"<p>{sum(seconds):.1f} s in all in the sandbox; median {statistics.median(seconds):.2f} s, "
                     f"slowest {max(seconds):.2f} s ({_e(max(s.seconds, key=s.seconds.get))}).</p>"
                     f"<img alt='grading time per submission' src='data:image/png;base64,{figure_seconds(s)}'>")
    parts.append("</section>")
    return "\n".join(parts)


def page(summaries: list[Summary], title: str) -> str:
    """The whole page: one section per exercise."""
    contents = "".join(f"<li><a href='#{_e(s.exercise)}'>{_e(s.exercise)}</a></li>" for s in summaries)
    body = "\n".join(section(s).replace("<h2>", f"<h2 id='{_e(s.exercise)}'>", 1) for s in summaries)
    return (f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{_e(title)}</title>"
            f"<style>{STYLE}</style></head><body><h1>{_e(title)}</h1>"
            + (f"<ul>{contents}</ul>" if len(summaries) > 1 else "") + body + "</body></html>\n")


def text(s: Summary) -> str:
    """The same numbers as plain text, for the terminal."""
    lines = [f"{s.exercise}: {len(s.scores)} students, mean {s.mean:.2f}/{s.max_score:g}, median {s.median:g}, "
             f"{sum(v >= s.max_score for v in s.scores.values())} with full marks"]
    if not s.scores:
        return lines[0]
    width = max(len(c.grade_id) for c in s.cells)
    lines.append("  test cells (passed, mean points):")
    lines += [f"    {c.grade_id:<{width}}  {c.passed:>3} of {c.graded:<3} {100 * c.pass_rate:>4.0f}%  "
              f"mean {c.mean:.2f}/{c.points:g}" for c in s.cells]
    lines.append("  what the class got wrong (students):" if s.diagnoses else "  no diagnosis named")
    lines += [f"    {len(d.students):>3}  {d.code}: {d.meaning} ({', '.join(d.students)})" for d in s.diagnoses]
    if s.undiagnosed:
        lines.append(f"  {len(s.undiagnosed)} test cells lost points with no diagnosis named (see the page)")
    if s.never_ran:
        lines.append("  never ran: " + "; ".join(f"{n} ({why})" for n, why in s.never_ran))
    pending = [f"{n} ({f.cell} line {f.line})" for n, f in s.flagged if f.decision == "pending"]
    if pending:
        lines.append(f"  awaiting review: {', '.join(pending)}")
    if s.manual:
        lines.append("  manual scores: " + ", ".join(f"{n} {g} {score:g}" for n, g, score, _, _ in s.manual))
    if s.seconds:
        seconds = list(s.seconds.values())
        lines.append(f"  grading time: {sum(seconds):.1f} s in all, median {statistics.median(seconds):.2f} s, "
                     f"slowest {max(seconds):.2f} s")
    return "\n".join(lines)


def build(course: Course, exercises: list[str]) -> tuple[list[Summary], Path]:
    """Summarize the exercises' stored results and write the page; return the summaries and the page's path.

    Raises CourseError when none of them has a result yet.
    """
    summaries = [summarize(course.exercise(name), load(course, name)) for name in exercises]
    if not any(s.scores for s in summaries):
        which = exercises[0] if len(exercises) == 1 else "any exercise"
        raise CourseError(f"no results for {which} yet: grade the class first (course grade EX FOLDER).")
    summaries = [s for s in summaries if s.scores] if len(exercises) > 1 else summaries
    name = exercises[0] if len(exercises) == 1 else "class"
    path = course.work / "reports" / f"{name}.html"
    path.parent.mkdir(parents=True, exist_ok=True)
    title = f"What the class got wrong: {exercises[0]}" if len(exercises) == 1 else "What the class got wrong"
    path.write_text(page(summaries, title))
    return summaries, path
