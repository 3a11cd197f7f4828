"""`grade SUBMISSIONS` (also `grade batch SUBMISSIONS`): grade a class and write the gradebook and reports."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from rich.console import JustifyMethod
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from grader.api import (
    EXECUTORS,
    ClassSource,
    Regrade,
    Result,
    canvas_target,
    check_moodle_worksheet,
    executor_for,
    grade_class,
    keep_previous,
    load_bank,
    load_rubric,
    options_for,
    prepare_test_data,
    record_grading,
    regrade_report,
    write_lms_exports,
    write_outputs,
)
from grader.cli.common import add_run_options, console_for, run_overrides, warn_if_unsandboxed
from grader.cli.main import EXIT_INTERNAL
from grader.errors import GraderError
from grader.intake import DEFAULT_ID_PATTERN
from grader.report.gradebook import GradebookEntry, gradebook_rows

HELP = """\
Grade every submission in a folder (or an LMS zip) against a rubric: run each in the
sandbox, measure its model, score it, and write in --out:

  gradebook.csv                 student, score, max, passed, verdict, one column per rubric item, similar_to
  similarity.html               look-alike pairs, their scores and their code side by side (instructor only)
  instructor.html               each student's score, hidden items and look-alikes (instructor only)
  <student>/report.html         self-contained report: scores, layer table, plots (the student's copy:
                                no hidden item, no other student)
  <student>/report.md           the same as text
  <student>/results.json        Gradescope autograder format
  <student>/facts.json          every measured fact
  grading.json                  the rubric and run settings of this grading (what the next one compares with)
  changes.csv                   grading into a folder that holds a gradebook: who changed (before and after
                                score, delta, passed before and after, pass flips, items whose points moved);
                                the gradebook replaced is kept as gradebook.previous.csv
  canvas.csv                    for Canvas's Gradebook import (Canvas file names with --canvas-assignment-id,
                                or --roster with Canvas's gradebook export)
  <worksheet>.csv               --moodle-worksheet filled in: Grade and Feedback comments, all else as it was
  moodle-feedback.zip           each report.html, for Moodle's "Upload multiple feedback files in a zip"

Submissions: .ipynb / .py / .pt2 files (one per student), or one folder per student
(a notebook, or a zip of it, and in evaluate mode the model.pt2 beside it; several
notebooks go by the rubric's `notebook:` glob), or a link to GitHub (a .url,
.txt or .html file, Moodle's online text) fetched with git at the linked commit or the
last commit before --deadline. Student ids come from
Canvas / Moodle file names (lastname_12345_...); --id-pattern changes that. Names come from
Moodle's file names or --roster (Canvas's gradebook export, Moodle's grading worksheet, or
a CSV with id,name,...); Canvas's LATE_ marker becomes the fact submission.late.

Every student found has a row: one whose hand-in holds nothing to grade (or, with
--roster, who handed in nothing) gets the verdict nothing_to_grade and 0, and a report
that says why.

Re-running grades only what changed: facts are cached per file content and run
settings; a changed rubric re-scores without running anything. --force runs all again;
--only ID runs that student again and keeps everyone else's cached results.

Re-grading: fix the rubric (a threshold, points, the pass rule) and grade into the same
--out. Every student is re-scored from the cached facts, nothing runs unless the rubric's
run settings (mode, limits, model variable, environment) changed; the summary says how
many scores went up or down, who now passes or fails, and writes changes.csv.

Examples
  grade submissions/ --rubric mnist-s3
  grade export.zip --rubric rubrics/mnist-s4.yaml --jobs 2 --out results/
  grade examples/submissions --rubric mnist-s3 --mode evaluate
  grade submissions/ --rubric mnist-s5 --quiz quizzes/cnn-basics.yaml --json > gradebook.json
  grade submissions.zip --rubric mnist-s3 --roster canvas-export.csv          # writes canvas.csv too
  grade moodle-export.zip --rubric mnist-s3 --moodle-worksheet Grades-S3.csv
"""


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("batch", help="grade a folder or zip of submissions (also: grade SUBMISSIONS)",
                            description=HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("submissions", type=Path, metavar="SUBMISSIONS", help="folder or .zip of submissions")
    parser.add_argument("--rubric", default="mnist-s3", help="rubric file or shipped name (default: mnist-s3)")
    parser.add_argument("--out", type=Path, default=Path("grading-results"),
                        help="output folder (default: grading-results/)")
    parser.add_argument("--jobs", "-j", type=int,
                        help="submissions at a time (default: cores ÷ --cpus (1 when not given), capped by memory ÷ "
                             "--memory; with GPUs, GPUs × --jobs-per-gpu). Each gets cores ÷ jobs of the CPU "
                             "unless --cpus says, so --jobs 1 uses every core")
    parser.add_argument("--executor", choices=EXECUTORS, default="local",
                        help="where submissions run: local (this machine, default) or ray (Ray tasks on a cluster; "
                             "needs pip install '.[ray]'; see docs/scale-out.md)")
    parser.add_argument("--address", metavar="ADDR",
                        help="the Ray cluster for --executor ray: auto (this node's cluster) or ray://HOST:10001 "
                             "(default: start a local Ray with this machine's cores for the run)")
    parser.add_argument("--mode", choices=["static", "evaluate", "execute"], help="override the rubric's mode")
    parser.add_argument("--force", action="store_true", help="grade everything again, ignoring cached results")
    parser.add_argument("--deadline", metavar="WHEN",
                        help="link submissions naming a branch are graded at its last commit before this "
                             "(ISO 8601: 2026-12-01T23:59, local time, or with +01:00)")
    parser.add_argument("--only", metavar="ID",
                        help="grade this student again; everyone else comes from the cache in --out, unrun")
    parser.add_argument("--id-pattern", default=DEFAULT_ID_PATTERN,
                        help="regex with a group named id that takes the student id from a file or folder name")
    parser.add_argument("--quiz", metavar="BANK", help="also check the answers in each notebook's cell tagged `quiz`")
    parser.add_argument("--json", action="store_true", help="print the gradebook rows as JSON on stdout")
    parser.add_argument("--roster", type=Path, metavar="CSV",
                        help="names, e-mails, sections and SIS ids by student id: Canvas's gradebook export, "
                             "Moodle's grading worksheet, or a CSV with id,name,...")
    parser.add_argument("--canvas-assignment-id", metavar="N",
                        help="the Canvas assignment for canvas.csv (the number after /assignments/ in its address)")
    parser.add_argument("--moodle-worksheet", type=Path, metavar="CSV",
                        help="Moodle's offline grading worksheet to fill in (written to --out under its own name); "
                             "without --roster it also names the participants and says who was late")
    add_run_options(parser, defaults_from_rubric=True)
    parser.set_defaults(handler=run)


def summary_table(results: list[Result]) -> Table:
    table = Table(title="Grades", title_justify="left")
    columns: list[tuple[str, JustifyMethod]] = [("student", "left"), ("score", "right"), ("passed", "center"),
                                                ("verdict", "left"), ("not passed", "left"), ("time", "right")]
    for column, justify in columns:
        table.add_column(column, justify=justify)
    for r in results:
        graded = r.sheet.score is not None
        missed = (", ".join(i.id for i in r.sheet.failed()) if graded else "") or "-"
        score = f"{r.sheet.score:g} / {r.sheet.max_score:g}" if graded else "not graded"
        table.add_row(r.student, score,
                      "[green]yes[/]" if r.sheet.passed else "[red]no[/]", r.facts.verdict.kind or "-", missed,
                      "cached" if r.cached else f"{r.seconds:.0f} s")
    return table


CHANGES_SHOWN = 30  # rows of the changes table; changes.csv has them all


def changes_table(regrade: Regrade) -> Table:
    table = Table(title="Changes since the last grading", title_justify="left")
    columns: list[tuple[str, JustifyMethod]] = [("student", "left"), ("before", "right"), ("after", "right"),
                                                ("delta", "right"), ("passed", "center"), ("items changed", "left")]
    for column, justify in columns:
        table.add_column(column, justify=justify)

    def shown(score) -> str:
        return "-" if score is None else f"{score:g}"

    for change in regrade.changes[:CHANGES_SHOWN]:
        before, after = change.before, change.after
        delta = change.delta
        passed = (f"{'yes' if before.passed else 'no'} → {'[green]yes[/]' if after.passed else '[red]no[/]'}"
                  if change.flipped and before and after else change.note or "")
        table.add_row(change.student, shown(before.score if before else None), shown(after.score if after else None),
                      "-" if delta is None else f"{delta:+g}", passed, ", ".join(change.items) or "-")
    if len(regrade.changes) > CHANGES_SHOWN:
        table.caption = f"and {len(regrade.changes) - CHANGES_SHOWN} more in {regrade.path}"
    return table


def run(args: argparse.Namespace) -> int:
    warn_if_unsandboxed(args)
    rubric = load_rubric(args.rubric)
    options = options_for(rubric, **run_overrides(args, rubric.limits.run_limits()))
    if args.jobs is not None and args.jobs < 1:
        raise GraderError("--jobs must be at least 1", where="--jobs", fix="e.g. --jobs 2")
    quiz = load_bank(args.quiz) if args.quiz else None
    for flag, path in (("--roster", args.roster), ("--moodle-worksheet", args.moodle_worksheet)):
        if path is not None and not path.is_file():
            raise GraderError("no such file", where=f"{flag} {path}", fix="give the CSV file the LMS exported")
    canvas_target(rubric, args.canvas_assignment_id, args.roster)  # a bad id or an unclear roster stops us here
    if args.moodle_worksheet is not None:
        check_moodle_worksheet(args.moodle_worksheet)
    roster = args.roster or args.moodle_worksheet  # the worksheet names the participants and says who was late
    data = prepare_test_data(options.data, unseen=options.unseen) if options.mode != "static" else None
    console = console_for(sys.stderr)
    started = time.monotonic()
    with (executor_for(args.executor, args.address, args.jobs, options) as executor,
          Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                   console=console, transient=False) as progress):
        task = progress.add_task("grading", total=None)
        running: set[str] = set()
        skipped: list[str] = []

        def on_event(kind, submission, result):
            if kind == "skipped":
                skipped.append(submission.student)
                return
            if kind == "queued":
                progress.update(task, total=(progress.tasks[0].total or 0) + 1)
            elif kind == "start":
                running.add(submission.student)
            else:
                running.discard(submission.student)
                progress.advance(task)
            progress.update(task, description="grading " + (", ".join(sorted(running)) or ""))

        source = ClassSource(args.submissions, roster=roster, id_pattern=args.id_pattern, deadline=args.deadline)
        graded = grade_class(source, rubric, options, out=args.out, executor=executor, force=args.force,
                             only=args.only, quiz=quiz, data=data, on_event=on_event)
        progress.console.print(f"rubric {rubric.id} ({options.mode} mode)", highlight=False)
        results = list(graded)
    results.sort(key=lambda r: r.student)
    problems: list[tuple[str, str]] = []
    previous = keep_previous(args.out)
    write_outputs(results, args.out, data=data, on_problem=lambda student, what: problems.append((student, what)))
    exports = write_lms_exports(results, args.out, rubric, canvas_assignment_id=args.canvas_assignment_id,
                                roster=args.roster, moodle_worksheet=args.moodle_worksheet)
    regrade = regrade_report(previous, results, rubric, options, args.out) if previous is not None else None
    record_grading(args.out, rubric, options)
    nothing = [r.student for r in results if r.facts.verdict.kind == "nothing_to_grade"]
    fresh = sum(not r.cached and r.sheet.score is not None for r in results) - len(nothing)
    not_graded = sum(r.sheet.score is None for r in results)
    console.print(summary_table(results))
    left_out = list(dict.fromkeys(i for r in results for i in r.sheet.left_out))
    if left_out:
        console.print(f"not judged in {options.mode} mode (the notebooks were not run), so left out of the maximum: "
                      f"{', '.join(left_out)}", soft_wrap=True, highlight=False)
    console.print(f"{len(results) - len(nothing)} submissions: {fresh} graded, "
                  + (f"{not_graded} not graded, " if not_graded else "")
                  + f"{len(results) - len(nothing) - fresh - not_graded} unchanged (cached) in "
                  f"{time.monotonic() - started:.0f} s; "
                  + (f"{len(nothing)} student(s) with nothing to grade; " if nothing else "")
                  + f"gradebook: {args.out / 'gradebook.csv'}", soft_wrap=True, highlight=False)
    if regrade is not None:
        if regrade.changes:
            console.print(changes_table(regrade))
        for line in regrade.lines():
            console.print(line, soft_wrap=True, highlight=False, markup=False)
    for path in exports.written.values():
        console.print(f"for the LMS: {path}", soft_wrap=True, highlight=False)
    if skipped:
        console.print(f"[yellow]note:[/] --only {args.only}: left out {', '.join(skipped)} (nothing cached for them "
                      f"in {args.out}; grade the class once without --only)", soft_wrap=True, highlight=False)
    if nothing:
        console.print(f"[yellow]note:[/] {', '.join(nothing)}: nothing to grade (no notebook in the hand-in, several "
                      "and nothing to pick one, or no hand-in at all); scored 0, and each one's verdict and report "
                      "say why and what to do", soft_wrap=True, highlight=False)
    for note in exports.notes:
        console.print(f"[yellow]note:[/] {note}", soft_wrap=True, highlight=False)
    for student, what in problems:
        console.print(f"[red]problem:[/] {student}: {what}; the rest of the class was written", soft_wrap=True,
                      highlight=False, markup=True)
    failed = not_graded_line(results)
    if failed:
        console.print(f"[red]{failed}[/]", soft_wrap=True, highlight=False)
    if args.json:
        json.dump(gradebook_rows([GradebookEntry(r.student, r.sheet, r.facts, r.submission.name) for r in results]),
                  sys.stdout, indent=2)
        sys.stdout.write("\n")
    return EXIT_INTERNAL if failed or problems else 0


def not_graded_line(results: list[Result]) -> str:
    """"2 of 5 not graded: the grader failed: <why> — <what to do>" (each reason once); "" when all were graded."""
    failed = [r for r in results if r.sheet.score is None]
    if not failed:
        return ""
    handed_in = [r for r in results if r.facts.verdict.kind != "nothing_to_grade"]  # "3 of 3", roster-only rows aside
    reasons = dict.fromkeys(r.facts.verdict.message or "no reason recorded" for r in failed)
    shown = "; ".join(list(reasons)[:3]) + (f"; and {len(reasons) - 3} other reasons" if len(reasons) > 3 else "")
    return (f"{len(failed)} of {len(handed_in)} not graded ({', '.join(r.student for r in failed)}): the grader "
            f"failed, not the students: {shown}. Nothing was cached for them: run the same command again")
