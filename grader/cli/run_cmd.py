"""`grade run NOTEBOOK`: execute one submission in the sandbox and print its facts (no rubric)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from grader.api import grade_facts, hand_in_at
from grader.cli.common import add_run_options, console_for, limits_given, status_line, warn_if_unsandboxed
from grader.facts import Facts, spec
from grader.formatting import cells
from grader.settings import Options

HELP = """\
Run one submission (.ipynb, .py, or an exported .pt2 model) in the sandbox, then
measure its model on the 10,000 MNIST test images in a clean process, and print
the facts: parameters, layers, receptive field, epochs trained, measured accuracy,
and the verdict (ok, timeout, memory, crash, no_model, bad_model, ...).

No rubric is needed. The exit code is 0 whenever a verdict was reached, whatever it is.

Examples
  grade run my.ipynb
  grade run my.ipynb --json | jq .eval.accuracy
  grade run my.ipynb --timeout 600 --data ~/mnist --keep out/
"""


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("run", help="execute one notebook in the sandbox and print its facts",
                            description=HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("submission", type=Path, metavar="PATH",
                        help="a notebook (run with the files of its repository or folder), a folder, or a .pt2")
    parser.add_argument("--json", action="store_true", help="print the facts record as JSON")
    parser.add_argument("--dry-run", action="store_true",
                        help="run the training and test code once: each data loader yields two batches of fixed "
                             "MNIST images on its first full pass, nothing after; accuracy is not measured")
    parser.add_argument("--keep", type=Path, metavar="DIR",
                        help="keep the executed notebook and the exported model here")
    add_run_options(parser)
    parser.set_defaults(handler=run)


def summary_lines(facts: Facts) -> list[str]:
    def show(name: str) -> str:
        """The fact as its declaration shows it on a report's card (99.42%, 83%, 28 px), or "not measured"."""
        return spec(name).show_short(facts.get(name))

    lines = [f"verdict      {facts.verdict.kind}: {facts.verdict.message}"]
    if facts.eval.accuracy is not None or facts.claims.accuracy is not None:
        lines.append(f"accuracy     {show('eval.accuracy')} measured (the notebook printed {show('claims.accuracy')})")
    gap = facts.claims.params_gap
    lines.append(f"parameters   {show('model.params.trainable')} trainable "
                 f"(the notebook printed {show('claims.params')}"
                 + (f": {abs(gap):,} {'more' if gap > 0 else 'fewer'} than the model graded has)" if gap else ")"))
    lines.append(f"layers       conv {show('model.layers.conv')}, 1x1 {show('model.layers.conv1x1')}, "
                 f"linear {show('model.layers.linear')}, batch norm {show('model.layers.batchnorm')}, "
                 f"dropout {show('model.layers.dropout')}, GAP {show('model.gap')}, "
                 f"transitions {show('model.transitions')}")
    lines.append(f"receptive    {show('model.rf.final')} at the last spatial layer")
    lines.append(f"training     {show('train.epochs')} epochs, {show('train.optimizer_steps')} optimizer steps "
                 f"on {show('train.device')}")
    lines.append(f"comments     {show('notebook.comment_coverage')} of code cells"
                 + (f" (without one: {cells(facts.notebook.uncommented_cells)})" if facts.notebook.uncommented_cells
                    else ""))
    return lines


def run(args: argparse.Namespace) -> int:
    warn_if_unsandboxed(args)
    options = Options(mode="execute", data=args.data, variable=args.variable or "model",
                      variable_named=args.variable is not None, limits=limits_given(args),
                      dry_run=args.dry_run, sandbox=not args.no_sandbox, gpu=args.gpu, keep=args.keep,
                      unseen=bool(args.unseen))
    with status_line("running") as progress:
        path, root = hand_in_at(args.submission)  # a notebook with its repository (or folder), or a folder
        facts = grade_facts(path, options, progress=progress, root=root)
    if args.json:
        json.dump(facts.to_json(), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        console_for(sys.stdout).print("\n".join(summary_lines(facts)), highlight=False, markup=False)
    return 0
