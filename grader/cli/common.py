"""Options shared by the commands that run submissions (`run`, `check`, batch grading), built from grader.settings,
and the consoles they print progress and results on."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TextIO

from rich.console import Console

from grader.settings import LIMITS, RunLimits, limits_from

NO_SANDBOX_WARNING = ("warning: --no-sandbox: the submission runs with your permissions, your network and your files. "
                      "Use it only for code you trust.")


def add_run_options(parser: argparse.ArgumentParser, *, defaults_from_rubric: bool = False) -> None:
    """Options for running submissions: one flag per limit in grader.settings, plus data, variable, sandbox, GPU.

    With `defaults_from_rubric`, a flag left out means "what the rubric says"."""
    group = parser.add_argument_group("running")
    group.add_argument("--data", metavar="DIR", help="MNIST folder (default: $GRADER_DATA, else the cache; "
                       "downloaded on first need)")
    for limit in LIMITS:
        default = "the rubric's" if defaults_from_rubric else limit.shown_default
        metavar = {"seconds": "S", "size": "SIZE", "count": "N"}[limit.unit]
        group.add_argument(limit.flag, dest=limit.name, metavar=metavar,
                           help=f"{limit.help} (default: {default})")
    group.add_argument("--variable", default=None,
                       help="the variable holding the model to grade (default: " +
                            ("the rubric's, else " if defaults_from_rubric else "") +
                            "the model the last optimizer step or fit updated)")
    group.add_argument("--no-sandbox", action="store_true",
                       help="run without bubblewrap (trusted code only; a warning is printed every run)")
    group.add_argument("--gpu", action=argparse.BooleanOptionalAction, default=None,
                       help="pass the GPU through (default: when /dev/nvidia* exist)")
    group.add_argument("--unseen", action=argparse.BooleanOptionalAction, default=None,
                       help="also measure on QMNIST's 50,000 digits beyond MNIST's test set, which no notebook can "
                            "have seen (about 10 MB, downloaded into the cache on first use; default: " +
                            ("the rubric's unseen:" if defaults_from_rubric else "no") + ")")


def limits_given(args: argparse.Namespace, base: RunLimits | None = None) -> RunLimits:
    """The limits on the command line laid over `base` (the rubric's, or the defaults); errors name the flag."""
    return limits_from({limit.flag: getattr(args, limit.name) for limit in LIMITS}, base=base)


def warn_if_unsandboxed(args: argparse.Namespace) -> None:
    if args.no_sandbox:
        print(NO_SANDBOX_WARNING, file=sys.stderr)


def run_overrides(args: argparse.Namespace, base: RunLimits) -> dict[str, Any]:
    """Options given on the command line, to lay over what the rubric asks for (None: keep the rubric's)."""
    return {"mode": getattr(args, "mode", None), "data": args.data, "variable": args.variable,
            "limits": limits_given(args, base), "sandbox": False if args.no_sandbox else None, "gpu": args.gpu,
            "unseen": args.unseen}


def console_for(stream: TextIO) -> Console:
    """A rich console that colours and moves the cursor only on a terminal: a pipe, a file or a notebook's kernel
    gets plain text even where FORCE_COLOR is set (ipykernel sets it, and rich would then take a pipe for a
    terminal)."""
    return Console(file=stream, force_terminal=None if stream.isatty() else False)


@contextmanager
def status_line(what: str) -> Iterator[Callable[[str], None]]:
    """Progress while a submission is graded: a spinner on a terminal; elsewhere one plain line per step on
    stderr ("checking: running the notebook"), which `grader.selfcheck` shows as its one updating line."""
    if sys.stderr.isatty():
        with console_for(sys.stderr).status(what) as status:
            yield status.update
        return

    def step(doing: str) -> None:
        print(f"{what}: {doing}", file=sys.stderr, flush=True)

    yield step
