"""`course grade` under attack and at scale: sandboxed, tamper-proof, parallel, resumable, distributed.

The adversarial corpus (tests/adversarial.py) is graded in one batch after the honest samples; afterwards
the gradebook and solutions/ must be exactly as they were, apart from the corpus's own grades.
"""

import hashlib
import shutil
import signal
import subprocess
import time

import nbformat
import pytest
from adversarial import write_corpus
from conftest import BIN, EX01_SAMPLES, TIMEOUT, copy_course, grade_in_process, results_of, run
from nbgrader.api import Gradebook

from autograders.sandbox import bwrap_available

pytestmark = pytest.mark.pipeline
SAMPLE_SCORES = {"alice": 10, "bob": 3, "carol": 6, "dave": 4, "erin": 7, "frank": 0}
needs_bwrap = pytest.mark.skipif(not bwrap_available(), reason="bubblewrap is not available on this machine")


def tree_digest(folder):
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def attacked(tmp_path_factory, pool):
    """The corpus graded in one batch, after the honest samples whose grades it must not touch."""
    course = copy_course(tmp_path_factory.mktemp("attacked") / "course", cell_timeout=TIMEOUT)
    honest = shutil.copytree(EX01_SAMPLES, course / "honest")
    grade_in_process(course, "ex01", honest, pool)
    before = {"solutions": tree_digest(course / "solutions"), "results": results_of(course)}
    cases = write_corpus(course / "inbox")
    grade_in_process(course, "ex01", course / "inbox", pool)
    return course, cases, before


@needs_bwrap
def test_every_attack_gets_its_expected_score(attacked):
    course, cases, _ = attacked
    found = results_of(course)
    wrong = {
        student: (found.get(student, {}).get("score"), case.score, found.get(student, {}).get("reason"))
        for student, case in cases.items()
        if student not in found or found[student]["score"] != case.score or case.reason not in found[student]["reason"]
    }
    assert not wrong, wrong


@needs_bwrap
def test_the_attacks_leave_the_course_intact(attacked):
    course, cases, before = attacked
    assert tree_digest(course / "solutions") == before["solutions"]
    with Gradebook(f"sqlite:///{course / 'coursework' / 'gradebook.db'}") as gradebook:
        for student, score in SAMPLE_SCORES.items():
            assert gradebook.find_submission("ex01", student).score == score
        for student, case in cases.items():
            assert gradebook.find_submission("ex01", student).score == case.score
    found = results_of(course)
    assert {s: found[s]["score"] for s in SAMPLE_SCORES} == {s: before["results"][s]["score"] for s in SAMPLE_SCORES}


@needs_bwrap
def test_huge_output_is_capped_in_the_graded_notebook(attacked):
    course, *_ = attacked
    graded = course / "coursework" / "autograded" / "prints_50_MB" / "ex01" / "ex01.ipynb"
    assert graded.stat().st_size < 2_000_000


def test_an_interrupted_batch_resumes_where_it_stopped(tmp_path):
    course = copy_course(tmp_path / "course", cell_timeout=TIMEOUT)
    inbox = course / "inbox"
    inbox.mkdir()
    for student in ("bob", "carol", "erin", "frank"):  # erin's endless loop keeps the batch busy for a while
        shutil.copy(EX01_SAMPLES / ("Copy of ex01 (bob).ipynb" if student == "bob" else f"{student}.ipynb"), inbox / f"{student}.ipynb")
    shutil.copytree(EX01_SAMPLES / "alice", inbox / "alice")
    scores = {"alice": 10, "bob": 3, "carol": 6, "erin": 7, "frank": 0}
    folder = course / "coursework" / "results" / "ex01"
    batch = subprocess.Popen([BIN / "course", "grade", "ex01", "inbox", "--workers", "1"], cwd=course,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             # as at a terminal: a CI job started in the background inherits SIGINT ignored
                             preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 300
    while not (folder.is_dir() and any(folder.glob("*.json"))) and time.monotonic() < deadline:
        time.sleep(0.2)
    batch.send_signal(signal.SIGINT)
    _, err = batch.communicate(timeout=120)
    done = {p.stem for p in folder.glob("*.json")}
    assert 0 < len(done) < len(scores), err
    assert batch.returncode == 130 and "--resume" in err
    resumed = run(["course", "grade", "ex01", inbox, "--resume"], cwd=course)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert f"{len(done)} already graded and unchanged: kept" in resumed.stdout
    assert {s: r["score"] for s, r in results_of(course).items()} == scores
    # A resubmission is graded again; an unchanged one is not.
    nbformat.write(nbformat.read(inbox / "alice" / "ex01.ipynb", as_version=4), inbox / "frank.ipynb")
    again = run(["course", "grade", "ex01", inbox, "--resume"], cwd=course)
    assert f"{len(scores) - 1} already graded and unchanged: kept" in again.stdout
    assert results_of(course)["frank"]["score"] == 10


def test_a_dask_cluster_runs_the_submissions(tmp_path):
    from distributed import LocalCluster

    course = copy_course(tmp_path / "course", cell_timeout=TIMEOUT)
    inbox = course / "inbox"
    inbox.mkdir()
    shutil.copytree(EX01_SAMPLES / "alice", inbox / "alice")
    shutil.copy(EX01_SAMPLES / "carol.ipynb", inbox)
    with LocalCluster(n_workers=1, threads_per_worker=2, processes=True, dashboard_address=None) as cluster:
        result = run(["course", "grade", "ex01", inbox, "--scheduler", cluster.scheduler_address], cwd=course)
    assert result.returncode == 0, result.stdout + result.stderr
    assert {s: r["score"] for s, r in results_of(course).items()} == {"alice": 10, "carol": 6}


def test_without_bubblewrap_the_weaker_fallback_grades_and_says_so(tmp_path):
    course = copy_course(tmp_path / "course", cell_timeout=TIMEOUT)
    inbox = course / "inbox"
    inbox.mkdir()
    shutil.copy(EX01_SAMPLES / "Copy of ex01 (bob).ipynb", inbox)
    shutil.copytree(EX01_SAMPLES / "alice", inbox / "alice")
    result = run(["course", "grade", "ex01", inbox, "--sandbox", "none"], cwd=course)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "WARNING: grading without bubblewrap" in result.stderr
    assert {s: r["score"] for s, r in results_of(course).items()} == {"alice": 10, "bob": 3}
    # Without the sandbox the student's process could read the course: no output of it is handed back.
    graded = nbformat.read(course / "coursework" / "autograded" / "alice" / "ex01" / "ex01.ipynb", as_version=4)
    assert any("graded without the sandbox" in c.source for c in graded.cells if c.cell_type == "markdown")
    assert not any(o.get("output_type") == "stream" for c in graded.cells if c.cell_type == "code" for o in c.outputs)


@pytest.mark.pipeline
def test_a_pool_closed_while_its_sandboxes_start_ends_at_once():
    """Closing a sandbox that is still starting (a command that fails at once, like `course release ex99`)
    kills its worker, and the thread waiting for the worker's hello sees the end instead of waiting out the
    start-up limit on a pipe that was closed under it."""
    import threading

    from autograders.sandbox import Sandbox, Settings

    for isolated in {False, bwrap_available()}:
        sandbox = Sandbox(Settings(isolated=isolated, warm=True, threads=1))
        failed = []

        def start(sandbox=sandbox, failed=failed):
            try:
                sandbox.start()
            except RuntimeError as error:
                failed.append(str(error))

        starting = threading.Thread(target=start)
        starting.start()
        while sandbox.process is None:
            time.sleep(0.01)
        sandbox.close()
        starting.join(60)  # the start-up limit is 300 s: a reader stuck on a closed pipe would still be waiting
        assert not starting.is_alive()
        assert failed == ["the grading sandbox was closed while it started"]
        assert sandbox.process is None
