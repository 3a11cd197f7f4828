"""`grade rubric lint|show|facts`: check rubric files, print a rubric's items, list the facts items may read."""

from __future__ import annotations

import argparse
import sys

from rich.console import Console
from rich.table import Table as RichTable

from grader.errors import GraderError
from grader.fact_spec import DEPTHS, PROVENANCES, STAGES
from grader.facts import known_facts, spec
from grader.formatting import num
from grader.rubric.load import load_rubric, rubric_hash, shipped
from grader.rubric.schema import __doc__ as SCHEMA_DOC
from grader.rubric.score import items_needing_execution, needs
from grader.settings import LIMITS

HELP = """\
A rubric (rubrics/*.yaml) turns the facts measured about a submission into
points. Items never look at code: each reads one fact (`model.params.trainable`,
`eval.accuracy`, `notebook.comment_coverage`, ...) and compares it.

  grade rubric lint rubrics/*.yaml          check files: schema, facts, templates (exit 2 on a problem)
  grade rubric show mnist-s4                the items as a table (a shipped rubric by name, or a path)
  grade rubric facts                        every fact an item may read, with its kind

Exit codes: 0 every file is valid, 2 a file has a problem (the message names the
file, the line, the item and what is allowed).

A rubric in brief:
{EXAMPLE}
limits: what a run may use (each also a flag of `grade check` and `grade SUBMISSIONS`)
{LIMITS}
  gpu          no | wanted (use one when present; the default) | required
"""

HELP = HELP.replace("{EXAMPLE}", SCHEMA_DOC[SCHEMA_DOC.index("    id:"):].rstrip() + "\n").replace(
    "{LIMITS}", "\n".join(f"  {limit.rubric:<12} {limit.help} (default {limit.shown_default}; {limit.flag})"
                          for limit in LIMITS))


FACTS_HELP = ("Every dotted fact name a stage produces: its kind (and unit), the stage that measures it, where its "
              "value comes from, the depths of grading that judge it (an item the depth does not judge is "
              "not_judged; a static rubric may not read it) and its meaning.\n\nstages:\n"
              + "\n".join(f"  {key:<12} {text}" for key, text in STAGES.items()) + "\n\nfrom:\n"
              + "\n".join(f"  {key:<12} {text}" for key, text in PROVENANCES.items()))


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("rubric", help="check and show YAML rubrics", description=HELP,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="rubric_command", metavar="ACTION")
    parser.set_defaults(handler=lambda args: _usage(parser))

    lint = commands.add_parser("lint", help="validate rubric files (schema, facts, feedback templates)",
                               description="Load each rubric and report every file's first problem.\n\n"
                               "  grade rubric lint rubrics/*.yaml",
                               formatter_class=argparse.RawDescriptionHelpFormatter)
    lint.add_argument("files", nargs="+", metavar="FILE", help="rubric files, or names of shipped rubrics "
                      f"({', '.join(shipped())})")
    lint.set_defaults(handler=run_lint)

    show = commands.add_parser("show", help="print a rubric's items as a table",
                               description="Print the items: fact, condition, points, required, visibility, "
                               "and whether a static check can judge them.\n\n  grade rubric show mnist-s3",
                               formatter_class=argparse.RawDescriptionHelpFormatter)
    show.add_argument("file", metavar="FILE", help="a rubric file, or the name of a shipped rubric")
    show.set_defaults(handler=run_show)

    facts = commands.add_parser("facts", help="list the facts an item may read",
                                description=FACTS_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    facts.set_defaults(handler=run_facts)


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def _console() -> Console:
    return Console() if sys.stdout.isatty() else Console(width=120)


def run_lint(args: argparse.Namespace) -> int:
    problems = 0
    for name in args.files:
        try:
            rubric = load_rubric(name)
        except GraderError as err:
            problems += 1
            print(f"error: {err.render()}", file=sys.stderr)
            continue
        print(f"ok: {rubric.source}: {rubric.id}, {len(rubric.items)} items, {num(rubric.max_score)} "
              f"points, hash {rubric_hash(rubric)[:12]}")
    return 2 if problems else 0


def run_show(args: argparse.Namespace) -> int:
    rubric = load_rubric(args.file)
    needs_run = set(items_needing_execution(rubric))
    console = _console()
    console.print(f"[bold]{rubric.id}[/bold]: {rubric.title}", highlight=False)
    if rubric.description:
        console.print(rubric.description.strip(), highlight=False)
    console.print(f"mode {rubric.mode}; limits: {rubric.limits.run_limits().describe()}, GPU {rubric.limits.gpu}; "
                  + (f"model variable `{rubric.model}`" if "model" in rubric.model_fields_set
                     else "graded model: the one the last optimizer step or fit updated"), highlight=False)
    env = rubric.environment
    console.print("grading environment: default packages"
                  + (f" + {', '.join(env.packages)}" if env and env.packages else "")
                  + (f" + {env.requirements}" if env and env.requirements else "")
                  + (f"; compat {', '.join(env.compat)}" if env and env.compat else "; no compat profile")
                  + f" (`grade env build {args.file}`)", highlight=False)
    table = RichTable(title=f"{len(rubric.items)} items, {num(rubric.max_score)} points",
                      title_justify="left")
    for column in ("item", "title", "fact", "condition", "points", "required", "visibility", "static check"):
        table.add_column(column, justify="right" if column == "points" else "left", no_wrap=column == "fact")
    for item in rubric.items:
        if item.bands is None:
            condition = needs(item, item)
        else:
            condition = "\n".join(f"{needs(item, band)}: {num(band.points)}" for band in item.bands)
        table.add_row(item.id, item.title, item.fact, condition, num(item.points),
                      "[bold]yes[/bold]" if item.required else "", item.visibility,
                      "needs a run" if item.id in needs_run else "yes")
    console.print(table)
    return 0


def run_facts(args: argparse.Namespace) -> int:
    table = RichTable(title="facts a rubric item may read", title_justify="left")
    for column in ("fact", "kind", "stage", "from", "judged in", "meaning"):
        table.add_column(column, no_wrap=column in ("fact", "stage", "from"))
    for name in known_facts():
        declared = spec(name)
        kind = " | ".join(declared.choices) or declared.kind + (f" ({declared.unit})" if declared.unit else "")
        judged = ", ".join(depth.replace("_", " ") for depth in DEPTHS if declared.judged_at(depth))
        table.add_row(name, kind, declared.stage, declared.provenance, judged, declared.description)
    _console().print(table)
    return 0
