"""`grade check NOTEBOOK`: a student's self-check, with the instructor's rubric and code path."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rich.table import Table

from grader.api import grade_submission, hand_in_at, load_rubric, options_for
from grader.cli.common import add_run_options, console_for, run_overrides, status_line, warn_if_unsandboxed
from grader.cli.main import EXIT_INTERNAL
from grader.facts import Facts
from grader.formatting import cells
from grader.rubric.reasons import NOT_GRADED
from grader.rubric.sheet import ScoreSheet

HELP = """\
Check your notebook before you upload it: the same rubric, the same sandbox and the
same measurements as the instructor's `grade submissions/`, at three depths:

  --static    nothing runs: comments per cell, shell lines, what your saved outputs
              claim, and which rubric items need a run to judge (about a second)
  --dry-run   the notebook runs in the sandbox, each data loader yielding two batches
              of the same fixed MNIST images on its first full pass and nothing after
              (one epoch): your training and test code run once, so a loop that
              crashes on its first batch shows here; parameters, layers, GAP, 1x1
              transitions and the receptive field are real; accuracy is not measured
              (seconds)
  (default)   the full run, then your model measured on the 10,000 test images

Exit code 0 when the rubric's pass rule holds, or, at a depth that cannot judge every
required item, when nothing it judged failed (that is not a pass, and the check says so).
Exit code 1 when a required item failed or could not be measured by a run that should
have measured it (an unreadable notebook, one with no model, a crash).

From a notebook cell:  from grader import check; check()          (save the notebook first)
                      shows a score card and returns the result: .passed, .score, .items

The notebook runs in its own folder, with that folder and the repository's root on
sys.path, so `from model import Net` finds your model.py. Data files and checkpoints
are not staged: the grader brings its own MNIST and trains your model itself.

Examples
  grade check my.ipynb --static
  grade check my-repo/ --dry-run
  grade check my.ipynb --dry-run --rubric mnist-s5
  grade check my.ipynb --json > facts-and-score.json
  grade check my.ipynb --keep out/     # out/executed.ipynb with the outputs of this run
"""

_STATUS = {"passed": "[green]passed[/]", "partial": "[yellow]partial[/]", "failed": "[red]failed[/]",
           "not_measured": "[red]not measured[/]", "not_judged": "[dim]not judged at this depth[/]"}


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("check", help="self-check one notebook against a rubric (students)",
                            description=HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("notebook", type=Path, metavar="PATH",
                        help="your notebook, or the folder of your repository that holds it: the files beside and "
                             "below it (model.py, utils.py, ...) are staged with it, as in a link hand-in")
    parser.add_argument("--rubric", default="mnist-s3", help="rubric file or shipped name (default: mnist-s3)")
    depth = parser.add_mutually_exclusive_group()
    depth.add_argument("--static", action="store_true", help="run nothing (about a second)")
    depth.add_argument("--dry-run", action="store_true",
                       help="run the training and test code once on two batches per loader, skip the real training")
    parser.add_argument("--json", action="store_true",
                        help="print the facts, the score sheet and the note on how the run ended as JSON (what "
                             "`from grader import check` reads)")
    parser.add_argument("--keep", type=Path, metavar="DIR",
                        help="keep the executed notebook (with its outputs) and the exported model here")
    add_run_options(parser, defaults_from_rubric=True)
    parser.set_defaults(handler=run)


def _exit_code(sheet: ScoreSheet) -> int:
    """0: the sheet passes, or nothing this depth judged failed (a static check or dry run: not a pass); 3: the
    grader failed (no score); else 1."""
    if sheet.score is None:
        return EXIT_INTERNAL
    if sheet.passed:
        return 0
    if sheet.required_not_passed():
        return 1
    return 0 if sheet.not_judged else 1


def _run_note(facts: Facts, sheet: ScoreSheet) -> str | None:
    """How the run ended, in the line printed above the table (and the "note" of `--json`)."""
    if sheet.score is None:
        return facts.verdict.message
    if facts.verdict.kind:
        return f"run: {facts.verdict.kind} — {facts.verdict.message}"
    if facts.notebook.saved_error_cells:
        return (f"saved outputs: an error in {cells(facts.notebook.saved_error_cells)} (the run that produced "
                "them failed there; Restart and Run All before you hand it in)")
    return None


def run(args: argparse.Namespace) -> int:
    warn_if_unsandboxed(args)
    rubric = load_rubric(args.rubric)
    overrides = run_overrides(args, rubric.limits.run_limits())
    if args.static:
        overrides["mode"] = "static"
    # warm: the clean evaluator starts while the notebook runs (its torch import overlaps the kernel's)
    options = options_for(rubric, **overrides, dry_run=args.dry_run or None, keep=args.keep, warm=True)
    with status_line("checking") as progress:
        path, root = hand_in_at(args.notebook, rubric.notebook)  # the notebook with its repository (or folder)
        result = grade_submission(path, rubric, options, root=root, progress=progress, show_hidden=False)
    facts, sheet = result.facts, result.sheet
    failed = sheet.required_not_passed()
    note = _run_note(facts, sheet)
    if args.json:
        json.dump({"facts": facts.to_json(), "score": sheet.model_dump(mode="json"), "note": note}, sys.stdout,
                  indent=2)
        sys.stdout.write("\n")
        return _exit_code(sheet)
    out = console_for(sys.stdout)
    if sheet.score is None:
        out.print(f"[red]{args.notebook}: {NOT_GRADED}.[/] {facts.verdict.message}", soft_wrap=True, highlight=False)
        return _exit_code(sheet)
    depth = "static check" if args.static else "dry run" if args.dry_run else "full run"
    out.print(f"[bold]{args.notebook}[/] against [bold]{rubric.id}[/] ({depth}): "
              f"{sheet.score:g} / {sheet.max_score:g} points")
    staged = [f.path for f in facts.submission.files or []][1:]
    if staged:
        out.print(f"staged with the notebook: {', '.join(staged)}", markup=False, highlight=False)
    for left in facts.submission.left_out or []:
        out.print(f"not staged: {left.path} ({left.reason})", markup=False, highlight=False)
    if note:
        out.print(note, markup=False, highlight=False)
    table = Table(show_lines=False)
    for column in ("item", "status", "points", "evidence"):
        table.add_column(column)
    for item in sheet.items:
        table.add_row(item.title + (" (required)" if item.required else ""), _STATUS[item.status],
                      f"{item.points:g}/{item.max_points:g}", item.evidence)
    out.print(table)
    to_change = [item for item in sheet.items if item.status in ("failed", "partial") and item.feedback]
    if to_change:
        out.print("[bold]What to change[/]")
        for item in to_change:
            out.print(f"- {item.title}: {item.feedback}", markup=False, highlight=False)
    out.print(f"Passing {rubric.id} means: {sheet.pass_rule}.", highlight=False)
    if sheet.passed:
        out.print("[green]Passed: the rubric's pass rule holds.[/]")
    elif failed:
        out.print(f"[red]Not passed: required items not passed: {', '.join(failed)}.[/]")
    elif sheet.not_judged:
        out.print(f"[yellow]Nothing required failed so far, but this is not a pass: {', '.join(sheet.not_judged)} "
                  f"{'is' if len(sheet.not_judged) == 1 else 'are'} not judged at this depth (run the full check).[/]")
    else:
        out.print(f"[red]Not passed: the score {sheet.score:g} does not meet the pass rule.[/]")
    return _exit_code(sheet)
