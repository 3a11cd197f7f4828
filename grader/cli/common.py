"""Options shared by the commands that run submissions (`run`, `check`, batch grading)."""

from __future__ import annotations

import argparse
import re
import sys

from grader.errors import GraderError
from grader.execute.job import Limits

NO_SANDBOX_WARNING = ("warning: --no-sandbox: the submission runs with your permissions, your network and your files. "
                      "Use it only for code you trust.")


def add_run_options(parser: argparse.ArgumentParser, *, defaults_from_rubric: bool = False) -> None:
    """Options for running submissions; with `defaults_from_rubric`, unset limits mean "what the rubric says"."""
    default = (lambda value: None) if defaults_from_rubric else (lambda value: value)
    said = (lambda value: "the rubric's") if defaults_from_rubric else (lambda value: value)
    group = parser.add_argument_group("running")
    group.add_argument("--data", metavar="DIR", help="MNIST folder (default: $GRADER_DATA, else the cache; "
                       "downloaded on first need)")
    group.add_argument("--timeout", metavar="S", type=float, default=default(1800),
                       help=f"wall-clock limit for the whole notebook, seconds (default: {said(1800)})")
    group.add_argument("--cell-timeout", metavar="S", type=float, help="limit per cell (default: --timeout)")
    group.add_argument("--memory", metavar="SIZE", default=default("6G"),
                       help=f"memory limit, e.g. 4G or 800M (default: {said('6G')})")
    group.add_argument("--variable", default=default("model"),
                       help=f"the variable holding the model (default: {said('model')})")
    group.add_argument("--no-sandbox", action="store_true",
                       help="run without bubblewrap (trusted code only; a warning is printed every run)")
    group.add_argument("--gpu", action=argparse.BooleanOptionalAction, default=None,
                       help="pass the GPU through (default: when /dev/nvidia* exist)")


def parse_size(text: str, option: str = "--memory") -> int:
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)i?B?\s*", text, re.I)
    if not match:
        raise GraderError(f"{option} {text!r} is not a size", where=option, fix="write it like 4G, 800M or 1.5G")
    factor = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}[match[2].upper()]
    return int(float(match[1]) * factor)


def limits_from(args: argparse.Namespace) -> Limits:
    if args.timeout <= 0 or (args.cell_timeout is not None and args.cell_timeout <= 0):  # noqa: SIM102
        raise GraderError("timeouts must be positive", where="--timeout", fix="give seconds, e.g. --timeout 600")
    return Limits(wall_seconds=args.timeout, cell_seconds=args.cell_timeout, memory_bytes=parse_size(args.memory))


def warn_if_unsandboxed(args: argparse.Namespace) -> None:
    if args.no_sandbox:
        print(NO_SANDBOX_WARNING, file=sys.stderr)


def run_overrides(args: argparse.Namespace, rubric) -> dict:
    """Options given on the command line, to lay over what the rubric asks for (None: keep the rubric's)."""
    limits = None
    if (args.timeout is not None and args.timeout <= 0) or (args.cell_timeout is not None and args.cell_timeout <= 0):
        raise GraderError("timeouts must be positive", where="--timeout", fix="give seconds, e.g. --timeout 600")
    if args.timeout or args.cell_timeout or args.memory:
        base = rubric.limits.to_run_limits()
        limits = Limits(wall_seconds=args.timeout or base.wall_seconds,
                        cell_seconds=args.cell_timeout or base.cell_seconds,
                        memory_bytes=parse_size(args.memory) if args.memory else base.memory_bytes)
    return {"mode": getattr(args, "mode", None), "data": args.data, "variable": args.variable, "limits": limits,
            "sandbox": False if args.no_sandbox else None, "gpu": args.gpu}
