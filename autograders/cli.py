"""`course`: the instructor's pipeline (release, grade, review, score, feedback, report, export, similar), the
student edition (links, publish) and a demo of all of it."""

from __future__ import annotations

import argparse
import contextlib
import shutil
import signal
import sys
import threading
from pathlib import Path

from autograders.course import Course, CourseError, quiet
from autograders.results import printable

SAMPLES = Path(__file__).resolve().parent / "samples"


def _pool(args: argparse.Namespace | None = None):
    """The sandboxes for this command, booted once and shared by every exercise it grades."""
    from autograders.pool import Pool

    sandbox = getattr(args, "sandbox", "auto")
    isolated = {"auto": None, "bwrap": True, "none": False}[sandbox]
    if isolated:
        from autograders.sandbox import bwrap_available

        if not bwrap_available():
            raise CourseError("--sandbox bwrap: bubblewrap is missing or does not work here (apt-get install bubblewrap)")
    executor = client = None
    if getattr(args, "scheduler", None):
        from distributed import Client

        client = Client(args.scheduler)
        executor = client.get_executor()
    pool = Pool(getattr(args, "workers", None), isolated=isolated, warm=not getattr(args, "cold", False),
                executor=executor, client=client)
    if not pool.isolated:
        print("WARNING: grading without bubblewrap: each submission runs in its own temporary folder with time, "
              "memory and output limits, but it can read and write whatever your user can (the gradebook too) "
              "and use the network; feedback shows only the grader's verdicts. Install bubblewrap "
              "(apt-get install bubblewrap) for isolation.", file=sys.stderr)
    return pool


def cmd_release(course: Course, names: list[str], check: bool, pool) -> int:
    from autograders.release import verify

    failed = 0
    for exercise in names or course.exercise_names():
        if not check:
            course.generate_release(exercise)
        print(f"{exercise}: checking the release (solution gets full marks, blank gets 0, no hidden tests)...", flush=True)
        problems = verify(course, exercise, pool)
        if problems:
            failed += 1
            print(f"{exercise}: release NOT ok")
            for problem in problems:
                print(f"  - {problem}")
        else:
            action = "is in sync with" if check else "generated from"
            print(f"{exercise}: release ok — exercises/{exercise}/ {action} solutions/{exercise}/")
    return 1 if failed else 0


def cmd_grade(course: Course, exercise: str, folder: Path, pool, resume: bool = False) -> int:
    from tqdm import tqdm

    from autograders.collect import collect
    from autograders.pipeline import grade
    from autograders.results import format_table

    collection = collect(folder, exercise)
    if not collection.submissions:
        print(f"no notebooks found for {exercise} under {folder}")

    stop = threading.Event()  # Ctrl-C, or a batch job's `kill` (SIGTERM): the batch ends between two results
    for signum in (signal.SIGINT, signal.SIGTERM):
        if signal.getsignal(signum) is not signal.SIG_IGN:
            signal.signal(signum, lambda *_: stop.set())
    try:
        with tqdm(total=len(collection.submissions), desc=f"grading {exercise}", unit="student", file=sys.stderr) as bar:
            results = grade(course, exercise, collection.submissions, pool, progress=lambda r: bar.update(),
                            resume=resume, stop=stop)
    except KeyboardInterrupt:
        done = len(list(course.results_folder(exercise).glob("*.json")))
        print(f"\ninterrupted: the grades recorded so far are kept ({done} in "
              f"{course.relative(course.results_folder(exercise))}/); run the same command with --resume to grade the rest.",
              file=sys.stderr)
        return 130
    print(format_table(results, width=shutil.get_terminal_size((120, 20)).columns))
    if results:
        mean = sum(r.score for r in results) / len(results)
        full = sum(r.score == r.max_score for r in results)
        print(f"\n{len(results)} graded, mean {mean:.2f}/{results[0].max_score:g}, {full} with full marks.")
        kept = sum(r.resumed for r in results)
        if kept:
            print(f"{kept} already graded and unchanged: kept (--resume)")
        failures = [r for r in results if not r.ran]
        if failures:
            print(f"{len(failures)} could not be run at all: " + ", ".join(f"{r.student} ({r.reason})" for r in failures))
        flagged = [r for r in results if r.pending_review]
        if flagged:
            print(f"{len(flagged)} need review: " + ", ".join(r.student for r in flagged)
                  + f" (see `course review {exercise} STUDENT`)")
        manual = [r for r in results if r.manual]
        if manual:
            print(f"{len(manual)} with a manual score (*), kept: " + ", ".join(r.student for r in manual)
                  + f" (see `course score {exercise} STUDENT`)")
    for problem in collection.problems:
        print(f"note: {printable(problem)}")
    print(f"Full reasons per student: {course.relative(course.results_folder(exercise))}/")
    return 0


def stored_result(course: Course, exercise: str, student: str):
    """A student's recorded result, or a CourseError that says what to do."""
    from autograders import results

    course.exercise(exercise)  # an unknown exercise: its own message
    folder = course.results_folder(exercise)
    graded = sorted(p.stem for p in folder.glob("*.json")) if folder.is_dir() else []
    if not graded:
        raise CourseError(f"no results for {exercise} yet: grade the class first (course grade {exercise} FOLDER).")
    result = results.read(folder / f"{student}.json")
    if result is None:
        more = f" and {len(graded) - 8} more" if len(graded) > 8 else ""
        raise CourseError(f"no result for {student!r} in {exercise} (graded: {', '.join(graded[:8])}{more}).")
    return result


def cmd_review(course: Course, exercise: str, student: str, decision: str | None, flag_ids: list[str], pool) -> int:
    from autograders import record
    from autograders.pipeline import grade

    result = stored_result(course, exercise, student)
    if decision is None:
        if not result.flags:
            print(f"{student}, {exercise}: nothing to review ({result.score:g}/{result.max_score:g}).")
        for flag in result.flags:
            print(f"{flag.id}  [{flag.decision}]  {flag.cell} line {flag.line}: {flag.why}\n    {flag.code}")
        return 0
    unknown = sorted(set(flag_ids) - {f.id for f in result.flags})
    if unknown:
        raise CourseError(f"{student} has no flag {', '.join(unknown)} in {exercise} (see `course review {exercise} {student}`).")
    if not result.flags:
        raise CourseError(f"{student}'s {exercise} has no flag to decide on.")
    record.decide(course, exercise, student, flag_ids or [f.id for f in result.flags], decision)
    submitted = Path(result.submitted)
    if not submitted.is_file():
        raise CourseError(f"the decision is recorded, but {submitted} is gone: grade {student} again to apply it.")
    (regraded,) = grade(course, exercise, {student: submitted}, pool)
    print(f"{student}, {exercise}: {decision}; now {regraded.score:g}/{regraded.max_score:g} ({regraded.reason})")
    return 0


def cmd_score(course: Course, exercise_name: str, student: str, cell: str | None, points: float | None, why: str,
              clear: bool) -> int:
    from autograders import record

    exercise = course.exercise(exercise_name)
    result = stored_result(course, exercise.name, student)
    if cell is None:
        for grade_id, verdict in result.cells.items():
            manual = f"  manual, the grader gave {verdict.auto_score:g}: {verdict.manual_why}" if verdict.manual else ""
            print(f"{grade_id:<24} {verdict.score:>4g}/{verdict.max_score:<4g}{manual or '  ' + verdict.reason}")
        print(f"{student}, {exercise.name}: {result.score:g}/{result.max_score:g}")
        return 0
    test = exercise.test(cell)
    if test is None:
        raise CourseError(f"{exercise.name} has no test cell {cell!r}: its test cells are {', '.join(exercise.order)}.")
    if not result.ran:
        raise CourseError(f"{student}'s {exercise.name} could not be run ({result.reason}), so it has no test cell "
                          f"to score: grade a notebook of theirs that opens first.")
    if not clear:
        if points is None:
            raise CourseError(f"give the points: course score {exercise.name} {student} {cell} POINTS --why \"...\" "
                              f"(or --clear to withdraw a manual score).")
        if not 0 <= points <= test.points:
            raise CourseError(f"{cell} is worth 0 to {test.points:g} points, not {points:g}.")
        if not why.strip():
            raise CourseError("say why with --why \"...\": the reason is kept beside the score and shown in the table.")
    record.set_manual_score(course, exercise, student, cell, None if clear else points, why.strip(), result.sha256)
    record.apply_manual(result, record.manual_scores(course, exercise.name).get(student, {}))
    record.rewrite(course, exercise, result)
    what = "manual score withdrawn" if clear else f"{cell} set to {points:g}/{test.points:g} by hand"
    print(f"{student}, {exercise.name}: {what}; now {result.score:g}/{result.max_score:g}. It holds at every later "
          f"course grade (with or without --resume) while {student} hands in no other file.")
    return 0


def cmd_feedback(course: Course, exercise: str) -> int:
    from autograders.feedback import generate

    pages = generate(course, exercise)
    print(f"{exercise}: feedback for {len(pages)} students in {course.relative(course.feedback_folder())}/<student>/{exercise}/")
    return 0


def cmd_report(course: Course, exercise: str | None) -> int:
    import time

    from autograders import report

    started = time.perf_counter()
    names = [exercise] if exercise else course.exercise_names()
    summaries, path = report.build(course, names)
    print("\n\n".join(report.text(s) for s in summaries))
    print(f"\nThe page: {course.relative(path)} (written in {time.perf_counter() - started:.1f} s)")
    return 0


def cmd_similar(course: Course, exercise: str, folder: Path | None) -> int:
    from autograders import similar
    from autograders.collect import collect

    course.exercise(exercise)
    if folder is not None:
        submissions = collect(folder, exercise)  # its notes (two notebooks for one student, ...) are printed too
    else:  # the notebooks `course grade` graded, where they still are
        from autograders.report import load

        graded = load(course, exercise)
        if not graded:
            raise CourseError(f"no results for {exercise} yet: grade the class first (course grade {exercise} FOLDER), "
                              f"or give the folder: course similar {exercise} FOLDER.")
        submissions = {r.student: Path(r.submitted) for r in graded if r.submitted and Path(r.submitted).is_file()}
        gone = sorted(r.student for r in graded if r.student not in submissions)
        if gone:
            print(f"note: the graded notebooks of {', '.join(gone)} are gone from where they were: not compared")
    found = similar.find_similar(course, exercise, submissions)
    path = similar.write(course, found)
    for pair in found.pairs:
        print(f"{pair.first} and {pair.second}: {pair.similarity[0]:.0%} and {pair.similarity[1]:.0%} of their code in "
              f"common ({pair.tokens} filtered characters)")
    for problem in found.skipped:
        print(f"note: {printable(problem)}")
    print(f"{exercise}: {len(found.students)} submissions compared in {found.seconds:.2f} s, {len(found.pairs)} similar "
          f"pair(s); side by side in {course.relative(path)}")
    return 0


def cmd_export(course: Course, to: Path | None, format: str = "nbgrader", roster_file: Path | None = None) -> int:
    if format != "nbgrader":
        return export_for_lms(course, to, format, roster_file)
    if roster_file is not None:
        raise CourseError("--roster maps the platform's students to submissions: use it with --format canvas or moodle.")
    from nbgrader.plugins import CsvExportPlugin

    destination = to or course.work / "grades.csv"
    destination.parent.mkdir(parents=True, exist_ok=True)
    with quiet(), course.gradebook() as gradebook:
        CsvExportPlugin(to=str(destination)).export(gradebook)
    rows = len(destination.read_text().splitlines()) - 1
    print(f"grades of {rows} student-exercise pairs written to {course.relative(destination)}")
    return 0


def export_for_lms(course: Course, to: Path | None, format: str, roster_file: Path | None) -> int:
    from autograders import lms
    from autograders.report import load

    graded = {name: load(course, name) for name in course.exercise_names()}
    exercises = {name: course.exercise(name).max_score for name, found in graded.items() if found}
    if not exercises:
        raise CourseError("no results yet: grade the class first (course grade EX FOLDER).")
    grades: dict[str, dict[str, float]] = {}
    for name in exercises:
        for result in graded[name]:
            grades.setdefault(result.student, {})[name] = result.score
    roster = lms.read_roster(roster_file) if roster_file else None  # read before anything is written
    matched = lms.match(roster, sorted(grades)) if roster else None
    destination = to or course.work / f"grades-{format}.csv"
    destination.parent.mkdir(parents=True, exist_ok=True)
    (lms.write_canvas if format == "canvas" else lms.write_moodle)(destination, exercises, grades, roster, matched)
    platform = {"canvas": "Canvas' gradebook import", "moodle": "Moodle's CSV grade import"}[format]
    if matched is None:
        print(f"note: without --roster the submissions' names stand in for the platform's "
              f"{'SIS Login ID' if format == 'canvas' else 'username'}")
        print(f"{len(grades)} students, {len(exercises)} exercises written to {course.relative(destination)} for {platform}")
        return 0
    handed_in = sum(bool(names) for _, names in matched.rows)
    print(f"{len(matched.rows)} roster students ({handed_in} with a submission, {len(matched.rows) - handed_in} with "
          f"empty cells), {len(exercises)} exercises ({', '.join(exercises)}) written to {course.relative(destination)} "
          f"for {platform}")
    if format == "moodle":
        print("  on Moodle's import page, map \"Email address\" to useremail (or \"Username\" to username) and each "
              "exercise's column to its grade item")
    for problem in matched.ambiguous:
        print(f"NOT WRITTEN (fits several roster rows): {problem}")
    for problem in matched.scores(grades, list(exercises))[1]:
        print(f"LEFT EMPTY (two submissions for one exercise): {problem}")
    if matched.unmatched:
        print(f"NOT WRITTEN (no roster row): {', '.join(matched.unmatched)}: add them to the platform, or rename their "
              f"submissions after their login, and export again")
    return 0


def cmd_links(course: Course, check: bool) -> int:
    from autograders import links

    if check:
        problems = links.check(course)
        for problem in problems:
            print(f"  - {problem}")
        print(f"{len(problems)} notebooks disagree with [tool.course] ({course.public.repository}, {course.public.branch})"
              if problems else f"every notebook points at {course.public.url} ({course.public.branch})")
        return 1 if problems else 0
    changed = links.apply(course)
    print(f"{len(changed)} notebooks now point at {course.public.url} ({course.public.branch}); exercises/ regenerated")
    for path in changed:
        print(f"  {course.relative(path)}")
    return 0


def cmd_publish(course: Course, target: Path) -> int:
    from autograders import links
    from autograders.publish import publish

    problems = links.check(course)
    if problems:
        raise CourseError(f"{len(problems)} notebooks disagree with [tool.course]: run `course links` first "
                          f"({problems[0]})")
    report = publish(course, target)
    print(f"student edition in {target}: {report.files} files; {len(report.written)} written, {len(report.removed)} removed"
          " (no solution, hidden test or sample answer in any of them)")
    return 0


def cmd_site(course: Course, out: Path | None) -> int:
    from autograders import site

    built = site.build(course, out)
    print(f"site: {built.pages} pages in {course.relative(built.folder)}/ (open index.html), built in {built.seconds:.1f} s")
    return 0


def cmd_demo(course: Course, pool) -> int:
    status = cmd_release(course, [], check=False, pool=pool)
    for exercise in course.exercise_names():
        samples = SAMPLES / exercise
        if samples.is_dir():
            print(f"\n== {exercise}: grading the sample submissions in {samples.relative_to(SAMPLES.parent.parent)}/")
            cmd_grade(course, exercise, samples, pool)
            cmd_feedback(course, exercise)
    cmd_export(course, None)
    print()
    cmd_report(course, None)
    return status


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="course", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    def sandboxed(command: argparse.ArgumentParser) -> argparse.ArgumentParser:
        command.add_argument("--workers", type=int, help="submissions run in parallel (default: one per CPU core)")
        command.add_argument("--sandbox", choices=["auto", "bwrap", "none"], default="auto",
                             help="isolation: bubblewrap where it works (auto), required (bwrap), or the weaker fallback (none)")
        command.add_argument("--cold", action="store_true", help="a fresh worker per submission instead of warm workers")
        return command

    release = sandboxed(commands.add_parser("release", help="generate exercises/<ex>/ from solutions/<ex>/ and prove it right"))
    release.add_argument("exercise", nargs="*", help="exercises to release (default: all)")
    release.add_argument("--check", action="store_true", help="verify the committed release without regenerating it")
    grade = sandboxed(commands.add_parser("grade", help="autograde a folder of student notebooks"))
    grade.add_argument("exercise")
    grade.add_argument("folder", type=Path, help="the notebooks as the learning platform hands them out")
    grade.add_argument("--resume", action="store_true", help="skip students whose unchanged submission is already graded")
    grade.add_argument("--scheduler", metavar="ADDRESS", help="run the submissions on a Dask cluster (tcp://host:8786)")
    review = sandboxed(commands.add_parser("review", help="list a student's review flags, or accept or reject them"))
    review.add_argument("exercise")
    review.add_argument("student")
    review.add_argument("flag", nargs="*", help="the flags to decide on (default: all of the student's)")
    decision = review.add_mutually_exclusive_group()
    decision.add_argument("--accept", dest="decision", action="store_const", const="accepted",
                          help="the flagged code is fine: the score stands")
    decision.add_argument("--reject", dest="decision", action="store_const", const="rejected",
                          help="the flagged code breaks the exercise's rules: its guarded test cells score 0")
    decision.add_argument("--undecide", dest="decision", action="store_const", const="pending", help="withdraw a decision")
    score = commands.add_parser("score", help="set a test cell's score by hand (kept at every later grading), or list them")
    score.add_argument("exercise")
    score.add_argument("student")
    score.add_argument("cell", nargs="?", help="the test cell's grade_id (without it: list the student's cells)")
    score.add_argument("points", nargs="?", type=float, help="the points it gets")
    score.add_argument("--why", default="", help="your reason, kept beside the score (required to set one)")
    score.add_argument("--clear", action="store_true", help="withdraw the manual score: the grader's stands again")
    feedback = commands.add_parser("feedback", help="write an HTML feedback page per graded student")
    feedback.add_argument("exercise")
    report = commands.add_parser("report", help="what the class got wrong: an HTML page and a summary (all exercises without EX)")
    report.add_argument("exercise", nargs="?")
    similar = commands.add_parser("similar", help="pairs of students whose code is near-identical, side by side")
    similar.add_argument("exercise")
    similar.add_argument("folder", nargs="?", type=Path, help="the submissions (default: those `course grade` graded)")
    export = commands.add_parser("export", help="write every grade to a CSV file (nbgrader's, or one an LMS imports)")
    export.add_argument("--to", type=Path, help="where to write it (default: coursework/grades.csv, grades-canvas.csv, ...)")
    export.add_argument("--format", choices=["nbgrader", "canvas", "moodle"], default="nbgrader",
                        help="nbgrader's CSV (default), Canvas' gradebook import, or Moodle's CSV grade import")
    export.add_argument("--roster", type=Path, metavar="FILE",
                        help="the CSV the LMS exports (its students): matches them to the submissions' names")
    links = commands.add_parser("links", help="point every notebook's Colab badge and setup cell at [tool.course]")
    links.add_argument("--check", action="store_true", help="only say which notebooks disagree")
    publish = commands.add_parser("publish", help="write the student edition (no solutions, no hidden tests) into DIR")
    publish.add_argument("target", type=Path, metavar="DIR", help="a clone of the public repository, or a new folder")
    site = commands.add_parser("site", help="build the course website from the stored outputs (site/index.html)")
    site.add_argument("--to", type=Path, help="where to write it (default: site/)")
    demo = "release every exercise, grade its sample submissions, write feedback, grades.csv and the class report"
    sandboxed(commands.add_parser("demo", help=demo))
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        course = Course.find()
        if args.command == "feedback":
            return cmd_feedback(course, args.exercise)
        if args.command == "score":
            return cmd_score(course, args.exercise, args.student, args.cell, args.points, args.why, args.clear)
        if args.command == "report":
            return cmd_report(course, args.exercise)
        if args.command == "similar":
            return cmd_similar(course, args.exercise, args.folder)
        if args.command == "export":
            return cmd_export(course, args.to, args.format, args.roster)
        if args.command == "links":
            return cmd_links(course, args.check)
        if args.command == "publish":
            return cmd_publish(course, args.target)
        if args.command == "site":
            return cmd_site(course, args.to)
        if args.command == "grade" and not args.folder.is_dir():
            raise FileNotFoundError(f"no folder of submissions at {args.folder}")
        with contextlib.closing(_pool(args)) as pool:
            if args.command == "release":
                return cmd_release(course, args.exercise, args.check, pool)
            if args.command == "grade":
                return cmd_grade(course, args.exercise, args.folder, pool, args.resume)
            if args.command == "review":
                return cmd_review(course, args.exercise, args.student, args.decision, args.flag, pool)
            return cmd_demo(course, pool)
    except (CourseError, FileNotFoundError) as error:
        print(f"course: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
