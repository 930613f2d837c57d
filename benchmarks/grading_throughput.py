"""Grade the same N submissions with stock `nbgrader autograde` and with `course grade`; print the ratios.

    python benchmarks/grading_throughput.py            # 12 submissions of exercise 01
    python benchmarks/grading_throughput.py -n 24

Each command runs whole, as an instructor would type it (start-up included), in a throw-away copy
of the course. The scores must be identical; the ratios are wall times measured in this one run.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SAMPLES = ROOT / "autograders" / "samples" / "ex01"
# Every sample but the infinite loop, which would measure the time limit instead of the grader.
KINDS = {"alice": SAMPLES / "alice" / "ex01.ipynb", "bob": SAMPLES / "Copy of ex01 (bob).ipynb",
         "carol": SAMPLES / "carol.ipynb", "dave": SAMPLES / "dave.ipynb", "frank": SAMPLES / "frank.ipynb"}


def fresh_course(folder: Path, n: int) -> dict[str, Path]:
    """A copy of the course and n submissions, named s00_alice, s01_bob, ..."""
    shutil.copy(ROOT / "nbgrader_config.py", folder)
    shutil.copytree(ROOT / "solutions", folder / "solutions")
    shutil.copytree(ROOT / "exercises", folder / "exercises")
    kinds = itertools.cycle(KINDS.items())
    return {f"s{i:02d}_{kind}": path for i, (kind, path) in zip(range(n), kinds)}


def timed(command: list[str], cwd: Path) -> float:
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}")
    started = time.perf_counter()
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        sys.exit(f"{' '.join(command)} failed:\n{result.stdout}\n{result.stderr}")
    return seconds


def stock(folder: Path, submissions: dict[str, Path]) -> tuple[float, dict[str, float]]:
    from nbgrader.api import Gradebook

    for student, path in submissions.items():
        target = folder / "coursework" / "submitted" / student / "ex01"
        target.mkdir(parents=True)
        shutil.copy(path, target / "ex01.ipynb")
    timed([str(BIN / "nbgrader"), "generate_assignment", "ex01", "--force"], folder)  # not timed: both need it
    seconds = timed([str(BIN / "nbgrader"), "autograde", "ex01"], folder)
    with Gradebook(f"sqlite:///{folder / 'coursework' / 'gradebook.db'}") as gradebook:
        scores = {s: gradebook.find_submission("ex01", s).score for s in submissions}
    return seconds, scores


def course(folder: Path, submissions: dict[str, Path], *flags: str) -> tuple[float, dict[str, float]]:
    inbox = folder / "inbox"
    for student, path in submissions.items():
        (inbox / student).mkdir(parents=True)
        shutil.copy(path, inbox / student / "ex01.ipynb")
    timed([str(BIN / "course"), "release", "ex01"], folder)  # not timed: the gradebook learns the exercise
    seconds = timed([str(BIN / "course"), "grade", "ex01", "inbox", *flags], folder)
    results = folder / "coursework" / "results" / "ex01"
    return seconds, {s: json.loads((results / f"{s}.json").read_text())["score"] for s in submissions}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=12, help="submissions to grade (default 12)")
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    runs = {
        "stock nbgrader autograde": lambda f, s: stock(f, s),
        "course grade --workers 1 --cold": lambda f, s: course(f, s, "--workers", "1", "--cold"),
        f"course grade --workers {cores} --cold": lambda f, s: course(f, s, "--workers", str(cores), "--cold"),
        f"course grade --workers {cores} (warm, the default)": lambda f, s: course(f, s, "--workers", str(cores)),
    }
    print(f"{args.n} submissions of ex01 on {cores} CPU cores, Python {sys.version.split()[0]}")
    times, scores = {}, {}
    for name, grade in runs.items():
        with tempfile.TemporaryDirectory(prefix="grading-benchmark-") as tmp:
            submissions = fresh_course(Path(tmp), args.n)
            times[name], scores[name] = grade(Path(tmp), submissions)
        print(f"  {name:<45} {times[name]:7.1f} s  ({times[name] / args.n:.2f} s per submission)", flush=True)
    reference = scores["stock nbgrader autograde"]
    for name, found in scores.items():
        assert found == reference, f"{name} gave different scores: {found} != {reference}"
    print("scores identical in all runs:", dict(sorted(reference.items())))
    base = times["stock nbgrader autograde"]
    for name in list(runs)[1:]:
        print(f"speed-up of {name}: {base / times[name]:.1f}x")


if __name__ == "__main__":
    main()
