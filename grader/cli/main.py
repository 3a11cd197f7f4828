"""Entry point of `grade`: builds the parser from the sub-command modules and maps errors to exit codes.

Exit codes (like pytest / ruff): 0 success, 1 the thing checked did not pass,
2 a usage or input error (the message says what to fix), 3 an internal error.
"""

from __future__ import annotations

import argparse
import datetime
import difflib
import importlib
import os
import platform
import sys
import tempfile
import traceback
from pathlib import Path

from grader import __version__
from grader.errors import GraderError

# Sub-command modules, in the order `grade --help` lists them.
COMMANDS = [
    "grader.cli.arch_cmd",
    "grader.cli.data_cmd",
    "grader.cli.env_cmd",
    "grader.cli.quiz_cmd",
    "grader.cli.rubric_cmd",
    "grader.cli.run_cmd",
    "grader.cli.batch_cmd",
    "grader.cli.check_cmd",
    "grader.cli.serve_cmd",
    "grader.cli.gradescope_cmd",
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
    commands = list(parser._subparsers._group_actions[0].choices or ()) if parser._subparsers else []
    if not argv or argv[0].startswith("-") or argv[0] in commands:
        return argv
    if Path(argv[0]).exists():
        return ["batch", *argv]
    close = difflib.get_close_matches(argv[0], commands, n=1)
    raise GraderError("no such file or folder (and it is not a command either)", where=argv[0],
                      fix=(f"did you mean `grade {close[0]}`? " if close else "")
                      + "give a folder or LMS zip of submissions (`grade SUBMISSIONS --rubric R`) or one of the "
                      f"commands {', '.join(commands)}; `grade --help` explains each")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        parser = build_parser()
        args = parser.parse_args(_route(argv, parser))
        if not getattr(args, "handler", None):
            parser.print_help()
            return EXIT_USAGE
        return int(args.handler(args) or 0)
    except GraderError as err:
        print(f"error: {err.render()}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # a bug in the grader: one line for the user, the traceback in a log
        return _internal_error(err, argv)


def _internal_error(err: Exception, argv: list[str]) -> int:
    frame = traceback.extract_tb(err.__traceback__)[-1]
    message = (str(err).strip().splitlines() or [""])[0]
    failed = f"{type(err).__name__}{': ' + message if message else ''} (at {Path(frame.filename).name}:{frame.lineno})"
    log = _write_log(argv)
    command = " ".join(["grade", *argv[:1]])
    if log is None:
        traceback.print_exc()  # nowhere else to keep it
        print(f"internal error in `{command}`: {failed}; the traceback is above, as no log file could be "
              f"written; please report it", file=sys.stderr)
    else:
        print(f"internal error in `{command}`: {failed}; the full log is {log}; please report it with that "
              f"file", file=sys.stderr)
    return EXIT_INTERNAL


def _write_log(argv: list[str]) -> Path | None:
    """The traceback being handled, with the command and versions, in a new file under the user cache (else
    the temporary folder); None if neither is writable."""
    from grader.data.locate import cache_dir  # only on this path: it pulls in numpy

    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    text = (f"grade {' '.join(argv)}\nmnist-grader {__version__}, Python {platform.python_version()}, "
            f"{platform.platform()}\n\n{traceback.format_exc()}")
    for folder in (cache_dir().parent / "logs", Path(tempfile.gettempdir())):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            handle, name = tempfile.mkstemp(prefix=f"grade-{stamp}-", suffix=".log", dir=folder)
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                out.write(text)
            return Path(name)
        except OSError:
            continue
    return None


if __name__ == "__main__":
    raise SystemExit(main())
