"""Entry point of `grade`: builds the parser from the sub-command modules and maps errors to exit codes.

Exit codes (like pytest / ruff): 0 success, 1 the thing checked did not pass,
2 a usage or input error (the message says what to fix), 3 an internal error.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

from grader import __version__
from grader.errors import GraderError

# Sub-command modules, in the order `grade --help` lists them.
COMMANDS = [
    "grader.cli.arch_cmd",
    "grader.cli.data_cmd",
    "grader.cli.quiz_cmd",
    "grader.cli.rubric_cmd",
    "grader.cli.run_cmd",
    "grader.cli.batch_cmd",
    "grader.cli.check_cmd",
]

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 3


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="grade",
        description="Grade convolutional-network assignments: run each submission in a sandbox, "
        "measure it on MNIST, score it with a YAML rubric.\n\n"
        "  grade SUBMISSIONS --rubric mnist-s3     grade a class (same as `grade batch`)\n"
        "  grade check my.ipynb                    a student's self-check, same rubric and numbers\n"
        "  grade COMMAND --help                    what each command does, with examples",
        usage="grade [-h] [--version] {SUBMISSIONS | COMMAND} ...",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"mnist-grader {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(name).register(sub)
    return parser


def _route(argv: list[str], parser: argparse.ArgumentParser) -> list[str]:
    """`grade SUBMISSIONS ...` is `grade batch SUBMISSIONS ...`: a first word that is no command but a path."""
    commands = parser._subparsers._group_actions[0].choices if parser._subparsers else {}
    if argv and not argv[0].startswith("-") and argv[0] not in commands and Path(argv[0]).exists():
        return ["batch", *argv]
    return argv


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(_route(list(sys.argv[1:] if argv is None else argv), parser))
    if not getattr(args, "handler", None):
        parser.print_help()
        return EXIT_USAGE
    try:
        return int(args.handler(args) or 0)
    except GraderError as err:
        print(f"error: {err.render()}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
