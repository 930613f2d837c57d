"""Grade a batch of submissions, one student never stopping the others. One submission's way:

    collect   (collect.py)   whose notebook is whose, in a folder as a learning platform hands it out
    prepare   (prepare.py)   read it, restore deleted test cells, nbgrader's sanitizing preprocessors, steps
    execute   (pool.py, sandbox.py, worker.py)   run the steps in a sandbox, in parallel, one step at a time
    judge     (trusted.py, rules.py, judge.py)   re-check the answers, check the rules, score every test cell
    record    (record.py)    the instructor's word (manual scores, review decisions), gradebook, graded
                             notebook, coursework/results/<exercise>/<student>.json

This module only wires the stages together; each stage imports nothing above it.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, wait
from pathlib import Path

from autograders import record, rules, trusted
from autograders.course import Course, Exercise
from autograders.judge import Verdict, judge
from autograders.pool import Pool
from autograders.prepare import NotGradable, Prepared, prepare
from autograders.results import Result
from autograders.sandbox import Job, Outcome


def prepare_data(exercise: Exercise) -> None:
    """Fetch and unpack the data an exercise loads, here: sandboxes see the data root read-only."""
    if any("load_mnist" in cell.source for cell in exercise.notebook.cells):
        from utils.data import download_mnist

        download_mnist()  # without network and files, the notebook and the grader both use the offline sample


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else ""


def job_of(course: Course, prepared: Prepared) -> Job:
    """What the sandbox runs: each step's code, the test whose answers to take right after it, and whether
    to skip it when the step before it (the same test cell's visible part) ran past the time limit."""
    steps, previous = [], None
    for step in prepared.steps:
        follows = step.hidden is not None and previous is not None and previous.test == step.test
        steps.append((step.source, step.hidden, follows))
        previous = step
    return Job(tuple(steps), course.limits)


def verdict_of(course: Course, exercise: Exercise, prepared: Prepared, outcome: Outcome, decided: dict[str, str]) -> Verdict:
    """The judge stage: the trusted re-check and the rules check, then a verdict on every test cell."""
    checks = trusted.recheck(exercise, outcome.answers)
    report = rules.check(exercise, prepared.notebook)
    return judge(exercise, prepared, outcome, checks, report, decided, course.limits)


def grade(
    course: Course,
    exercise_name: str,
    submissions: dict[str, Path],
    pool: Pool,
    progress: Callable[[Result], None] | None = None,
    resume: bool = False,
    stop: threading.Event | None = None,
) -> list[Result]:
    """Autograde every submission; return one Result per student, whatever happens to the others.

    Setting `stop` (Ctrl-C, say) ends the batch between two results with KeyboardInterrupt: every result
    recorded so far stays, and `resume=True` later grades only the rest.
    """
    import utils.grading  # noqa: F401  (torch, for the grader's own checks: imported while the sandboxes boot)

    exercise = course.exercise(exercise_name)
    course.ensure_released(exercise.name)
    prepare_data(exercise)
    decisions = record.decisions(course, exercise.name)  # the instructor's word: it holds at every grading
    record.adopt_formgrader_scores(course, exercise)
    manual = record.manual_scores(course, exercise.name)
    graded: list[Result] = []

    def done(result: Result) -> None:
        graded.append(result)
        if progress:
            progress(result)

    def stopped() -> None:
        if stop is not None and stop.is_set():
            raise KeyboardInterrupt

    pending = {}
    for student, path in sorted(submissions.items()):
        stopped()
        digest = sha256(path)
        if resume and (kept := record.previous(course, exercise, student, digest, decisions.get(student, {}))) is not None:
            if record.apply_manual(kept, manual.get(student, {})):
                record.rewrite(course, exercise, kept)
            done(kept)
            continue
        try:
            prepared = prepare(course, exercise, student, path)
        except NotGradable as problem:
            done(record.record_not_graded(course, exercise, student, str(problem), path, digest))
            continue
        pending[pool.submit(job_of(course, prepared))] = (prepared, path, digest)
    waiting = set(pending)
    while waiting:
        finished, waiting = wait(waiting, timeout=0.2, return_when=FIRST_COMPLETED)
        for future in finished:
            stopped()
            prepared, path, digest = pending[future]
            try:
                outcome = future.result()
            except Exception as error:  # the executor itself failed (a lost Dask worker, say)
                problem = f"the grading worker failed: {type(error).__name__}"
                done(record.record_not_graded(course, exercise, prepared.student, problem, path, digest))
                continue
            try:
                verdict = verdict_of(course, exercise, prepared, outcome, decisions.get(prepared.student, {}))
                verdict.result.sha256 = digest  # which file the instructor's manual scores were given for
                record.apply_manual(verdict.result, manual.get(prepared.student, {}))
                done(record.record(course, exercise, verdict.result, verdict.notebook, path, digest))
            except Exception as error:  # one notebook must never stop the batch, even by breaking the grader
                problem = (f"the grader could not judge this notebook ({type(error).__name__}); "
                           f"it is kept for the instructor to look at")
                done(record.record_not_graded(course, exercise, prepared.student, problem, path, digest))
        stopped()
    return sorted(graded, key=lambda r: r.student)
