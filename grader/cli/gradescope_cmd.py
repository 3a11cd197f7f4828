"""`grade gradescope build`: the Gradescope autograder zip for a rubric."""

from __future__ import annotations

import argparse
from pathlib import Path

from grader.api import load_rubric
from grader.gradescope.build import build_autograder
from grader.report.gradescope import VISIBILITIES

HELP = """\
Make the autograder zip to upload in Gradescope (Configure Autograder > Zip file upload):
setup.sh installs bubblewrap and this grader and fetches MNIST; run_autograder grades the
student's notebook in /autograder/submission with the rubric in the sandbox and writes
/autograder/results/results.json (one test per rubric item, with its feedback as output;
a leaderboard of parameters and measured accuracy when the rubric says `leaderboard: true`).

Examples
  grade gradescope build --rubric mnist-s3 -o autograder.zip
  grade gradescope build --rubric rubrics/mnist-s4.yaml -o s4.zip --visibility after_due_date
"""


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("gradescope", help="make a Gradescope autograder zip",
                            description=HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    build = actions.add_parser("build", help="write autograder.zip for a rubric", description=HELP,
                               formatter_class=argparse.RawDescriptionHelpFormatter)
    build.add_argument("--rubric", required=True, help="rubric file or shipped name")
    build.add_argument("-o", "--out", type=Path, default=Path("autograder.zip"),
                       help="the zip (default: autograder.zip)")
    build.add_argument("--visibility", default="visible", choices=VISIBILITIES,
                       help="when students see the results (default: visible)")
    build.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    rubric = load_rubric(args.rubric)
    path = build_autograder(Path(rubric.source), args.out, visibility=args.visibility)
    print(f"{path}: autograder for {rubric.id} ({rubric.mode} mode); upload it in Gradescope's Configure Autograder")
    return 0
