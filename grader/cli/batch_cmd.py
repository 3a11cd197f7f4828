"""`grade SUBMISSIONS` (also `grade batch SUBMISSIONS`): grade a class and write the gradebook and reports."""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from grader.batch import Graded, default_jobs, grade_batch, options_for
from grader.cli.common import add_run_options, run_overrides, warn_if_unsandboxed
from grader.data import ensure_mnist, load_mnist
from grader.errors import GraderError
from grader.intake import DEFAULT_ID_PATTERN, discover, safe_extract
from grader.report.gradebook import GradebookEntry, gradebook_rows, write_gradebook
from grader.report.write import write_student_reports
from grader.rubric.load import load_rubric

HELP = """\
Grade every submission in a folder (or an LMS zip) against a rubric: run each in the
sandbox, measure its model, score it, and write in --out:

  gradebook.csv                 student, score, max, passed, verdict, one column per rubric item
  <student>/report.html         self-contained report: scores, layer table, plots
  <student>/report.md           the same as text
  <student>/results.json        Gradescope autograder format
  <student>/facts.json          every measured fact

Submissions: .ipynb / .py / .pt2 files (one per student), or one folder per student
(a notebook, and in evaluate mode the model.pt2 beside it). Student ids come from
Canvas / Moodle file names (lastname_12345_...); --id-pattern changes that.

Re-running grades only what changed: facts are cached per file content and run
settings; a changed rubric re-scores without running anything. --force runs all again.

Examples
  grade submissions/ --rubric mnist-s3
  grade export.zip --rubric rubrics/mnist-s4.yaml --jobs 2 --out results/
  grade examples/submissions --rubric mnist-s3 --mode evaluate
  grade submissions/ --rubric mnist-s5 --quiz quizzes/cnn-basics.yaml --json > gradebook.json
"""


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("batch", help="grade a folder or zip of submissions (also: grade SUBMISSIONS)",
                            description=HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("submissions", type=Path, metavar="SUBMISSIONS", help="folder or .zip of submissions")
    parser.add_argument("--rubric", default="mnist-s3", help="rubric file or shipped name (default: mnist-s3)")
    parser.add_argument("--out", type=Path, default=Path("grading-results"), help="output folder (default: grading-results/)")
    parser.add_argument("--jobs", "-j", type=int, help="submissions at a time (default: cores, or one per GPU)")
    parser.add_argument("--mode", choices=["static", "evaluate", "execute"], help="override the rubric's mode")
    parser.add_argument("--force", action="store_true", help="grade everything again, ignoring cached results")
    parser.add_argument("--id-pattern", default=DEFAULT_ID_PATTERN,
                        help="regex with a group named id that takes the student id from a file or folder name")
    parser.add_argument("--quiz", metavar="BANK", help="also check the answers in each notebook's cell tagged `quiz`")
    parser.add_argument("--json", action="store_true", help="print the gradebook rows as JSON on stdout")
    add_run_options(parser, defaults_from_rubric=True)
    parser.set_defaults(handler=run)


def _quiz_facts(bank_path: str | None):
    if not bank_path:
        return lambda submission, facts: facts
    from grader.inspect.static import inspect_submission
    from grader.quiz.answers import from_notebook
    from grader.quiz.bank import load_bank
    from grader.quiz.check import check_answers

    bank = load_bank(bank_path)

    def add(submission, facts):
        try:
            answers = from_notebook(inspect_submission(submission.path).notebook, str(submission.path))
        except GraderError:
            answers = {}  # no quiz cell: every question counts as missing
        return facts.model_copy(update={"quiz": check_answers(bank, answers, submission.student).to_facts()})

    return add


def summary_table(results: list[Graded]) -> Table:
    table = Table(title="Grades", title_justify="left")
    for column, justify in [("student", "left"), ("score", "right"), ("passed", "center"), ("verdict", "left"),
                            ("not passed", "left"), ("time", "right")]:
        table.add_column(column, justify=justify)
    for g in results:
        missed = ", ".join(i.id for i in g.sheet.failed()) or "-"
        table.add_row(g.submission.student, f"{g.sheet.score:g} / {g.sheet.max_score:g}",
                      "[green]yes[/]" if g.sheet.passed else "[red]no[/]", g.facts.verdict.kind or "-", missed,
                      "cached" if g.cached else f"{g.seconds:.0f} s")
    return table


def run(args: argparse.Namespace) -> int:
    warn_if_unsandboxed(args)
    rubric = load_rubric(args.rubric)
    options = options_for(rubric, **run_overrides(args, rubric))
    console = Console(stderr=True)
    with tempfile.TemporaryDirectory(prefix="mnist-grader-intake-") as tmp:
        root = args.submissions
        if root.suffix.lower() == ".zip":
            root = safe_extract(root, Path(tmp))
        submissions = discover(root, args.id_pattern)
        if args.jobs is not None and args.jobs < 1:
            raise GraderError("--jobs must be at least 1", where="--jobs", fix="e.g. --jobs 2")
        jobs = args.jobs or default_jobs(options)
        if options.mode != "static":
            ensure_mnist(options.data)
        console.print(f"{len(submissions)} submissions, rubric {rubric.id} ({options.mode} mode), {jobs} at a time")
        started = time.monotonic()
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=console, transient=False) as progress:
            task = progress.add_task("grading", total=len(submissions))
            running: set[str] = set()

            def on_event(kind, submission, graded):
                if kind == "start":
                    running.add(submission.student)
                else:
                    running.discard(submission.student)
                    progress.advance(task)
                progress.update(task, description="grading " + (", ".join(sorted(running)) or ""))

            results = grade_batch(submissions, rubric, options, out=args.out, jobs=jobs, force=args.force,
                                  on_event=on_event, extra_facts=_quiz_facts(args.quiz))
        _write_outputs(args.out, results, options, console)
    fresh = sum(not g.cached for g in results)
    console.print(summary_table(results))
    console.print(f"{fresh} graded, {len(results) - fresh} unchanged (cached) in {time.monotonic() - started:.0f} s; "
                  f"gradebook: {args.out / 'gradebook.csv'}", soft_wrap=True, highlight=False)
    if args.json:
        json.dump(gradebook_rows([GradebookEntry(g.submission.student, g.sheet, g.facts) for g in results]),
                  sys.stdout, indent=2)
        sys.stdout.write("\n")
    return 0


def _predictions(facts, labels):
    """The whole prediction array, rebuilt from the labels and the misclassified facts."""
    if facts.eval.misclassified is None or facts.eval.misclassified_as is None:
        return None
    predictions = labels.astype(int).copy()
    predictions[facts.eval.misclassified] = facts.eval.misclassified_as
    return predictions


def _write_outputs(out: Path, results: list[Graded], options, console: Console) -> None:
    out.mkdir(parents=True, exist_ok=True)
    test = None
    if options.mode != "static":
        test = load_mnist(ensure_mnist(options.data), "test")
    for g in results:
        write_student_reports(out, g.submission.student, g.facts, g.sheet, execution_time=g.seconds,
                              images=test.images if test is not None else None,
                              labels=test.labels if test is not None else None,
                              predictions=_predictions(g.facts, test.labels) if test is not None else None)
    write_gradebook(out / "gradebook.csv", gradebook_rows([GradebookEntry(g.submission.student, g.sheet, g.facts)
                                                           for g in results]))
