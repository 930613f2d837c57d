"""`course`: the instructor's pipeline — release, grade, feedback, export — and a demo of all of it."""

from __future__ import annotations

import argparse
import shutil
import signal
import sys
from pathlib import Path

from autograders.course import (
    CourseError,
    exercises,
    find_root,
    generate_release,
    gradebook_url,
    nbgrader_api,
    quiet,
    run_nbgrader,
    work_folder,
)

SAMPLES = Path(__file__).resolve().parent / "samples"


def cmd_release(root: Path, names: list[str], check: bool) -> int:
    from autograders.release import verify

    failed = 0
    for exercise in names or exercises(root):
        if not check:
            generate_release(root, exercise)
        print(f"{exercise}: checking the release (solution gets full marks, blank gets 0, no hidden tests)...", flush=True)
        problems = verify(root, exercise)
        if problems:
            failed += 1
            print(f"{exercise}: release NOT ok")
            for problem in problems:
                print(f"  - {problem}")
        else:
            action = "is in sync with" if check else "generated from"
            print(f"{exercise}: release ok — exercises/{exercise}/ {action} solutions/{exercise}/")
    return 1 if failed else 0


def cmd_grade(root: Path, exercise: str, folder: Path, workers: int | None = None, resume: bool = False,
              scheduler: str | None = None, sandbox: str = "auto", warm: bool = True) -> int:
    from tqdm import tqdm

    from autograders.collect import collect
    from autograders.grade import format_table, grade
    from autograders.sandbox import bwrap_available

    collection = collect(folder, exercise)
    if not collection.submissions:
        print(f"no notebooks found for {exercise} under {folder}")
    isolated = {"auto": None, "bwrap": True, "none": False}[sandbox]
    if isolated is None:
        isolated = bwrap_available()
    if not isolated:
        print("WARNING: grading without bubblewrap: each submission runs in its own temporary folder with time, "
              "memory and output limits, but it can read and write whatever your user can (the gradebook too) "
              "and use the network. Install bubblewrap (apt-get install bubblewrap) for isolation.", file=sys.stderr)
    def stop(signum, frame):  # a batch job's `kill` (SIGTERM) stops like Ctrl-C: what is recorded stays
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    executor = client = None
    if scheduler:
        from distributed import Client

        client = Client(scheduler)
        executor = client.get_executor()
    try:
        with tqdm(total=len(collection.submissions), desc=f"grading {exercise}", unit="student", file=sys.stderr) as bar:
            results = grade(root, exercise, collection.submissions, progress=lambda r: bar.update(), workers=workers,
                            executor=executor, resume=resume, isolated=isolated, warm=warm)
    except KeyboardInterrupt:
        done = len(list((work_folder(root) / "results" / exercise).glob("*.json")))
        print(f"\ninterrupted: the grades recorded so far are kept ({done} in {work_folder(root).name}/results/{exercise}/); "
              f"run the same command with --resume to grade the rest.", file=sys.stderr)
        return 130
    finally:
        if client is not None:
            client.close()
    print(format_table(results, width=shutil.get_terminal_size((120, 20)).columns))
    if results:
        mean = sum(r.score for r in results) / len(results)
        full = sum(r.score == r.max_score for r in results)
        print(f"\n{len(results)} graded, mean {mean:.2f}/{results[0].max_score:g}, {full} with full marks.")
        kept = sum(r.resumed for r in results)
        if kept:
            print(f"{kept} already graded and unchanged: kept (--resume)")
        failures = [r for r in results if not r.cells]
        if failures:
            print(f"{len(failures)} could not be run at all: " + ", ".join(f"{r.student} ({r.reason})" for r in failures))
    for problem in collection.problems:
        print(f"note: {problem}")
    print(f"Full reasons per student: {(work_folder(root) / 'results' / exercise).relative_to(root)}/")
    return 0


def cmd_feedback(root: Path, exercise: str) -> int:
    with quiet():
        result = nbgrader_api(root).generate_feedback(exercise, force=True)
    run_nbgrader(result, f"generate feedback for {exercise}")
    folder = work_folder(root) / "feedback"
    pages = sorted(folder.glob(f"*/{exercise}/*.html"))
    print(f"{exercise}: feedback for {len(pages)} students in {folder.relative_to(root)}/<student>/{exercise}/")
    return 0


def cmd_export(root: Path, to: Path | None) -> int:
    from nbgrader.api import Gradebook
    from nbgrader.plugins import CsvExportPlugin

    destination = to or work_folder(root) / "grades.csv"
    destination.parent.mkdir(parents=True, exist_ok=True)
    with quiet(), Gradebook(gradebook_url(root)) as gradebook:
        CsvExportPlugin(to=str(destination)).export(gradebook)
    rows = len(destination.read_text().splitlines()) - 1
    shown = destination.relative_to(root) if destination.is_relative_to(root) else destination
    print(f"grades of {rows} student-exercise pairs written to {shown}")
    return 0


def cmd_demo(root: Path) -> int:
    status = cmd_release(root, [], check=False)
    for exercise in exercises(root):
        samples = SAMPLES / exercise
        if samples.is_dir():
            print(f"\n== {exercise}: grading the sample submissions in {samples.relative_to(SAMPLES.parent.parent)}/")
            cmd_grade(root, exercise, samples)
            cmd_feedback(root, exercise)
    cmd_export(root, None)
    return status


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="course", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    release = commands.add_parser("release", help="generate exercises/<ex>/ from solutions/<ex>/ and prove it right")
    release.add_argument("exercise", nargs="*", help="exercises to release (default: all)")
    release.add_argument("--check", action="store_true", help="verify the committed release without regenerating it")
    grade = commands.add_parser("grade", help="autograde a folder of student notebooks")
    grade.add_argument("exercise")
    grade.add_argument("folder", type=Path, help="the notebooks as the learning platform hands them out")
    grade.add_argument("--workers", type=int, help="submissions run in parallel (default: one per CPU core)")
    grade.add_argument("--resume", action="store_true", help="skip students whose unchanged submission is already graded")
    grade.add_argument("--scheduler", metavar="ADDRESS", help="run the submissions on a Dask cluster (tcp://host:8786)")
    grade.add_argument("--sandbox", choices=["auto", "bwrap", "none"], default="auto",
                       help="isolation: bubblewrap where it works (auto), required (bwrap), or the weaker fallback (none)")
    grade.add_argument("--cold", action="store_true", help="a fresh worker per submission instead of warm workers")
    feedback = commands.add_parser("feedback", help="write an HTML feedback page per graded student")
    feedback.add_argument("exercise")
    export = commands.add_parser("export", help="write every grade to a CSV file")
    export.add_argument("--to", type=Path, help="where to write it (default: coursework/grades.csv)")
    commands.add_parser("demo", help="release every exercise, grade its sample submissions, write feedback and grades.csv")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        root = find_root()
        if args.command == "release":
            return cmd_release(root, args.exercise, args.check)
        if args.command == "grade":
            return cmd_grade(root, args.exercise, args.folder, args.workers, args.resume, args.scheduler, args.sandbox, not args.cold)
        if args.command == "feedback":
            return cmd_feedback(root, args.exercise)
        if args.command == "export":
            return cmd_export(root, args.to)
        return cmd_demo(root)
    except (CourseError, FileNotFoundError) as error:
        print(f"course: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
