"""Time a dry run (`grade check NB --dry-run`, a student's self-check) of this checkout against an earlier
commit, in one run.

    python bench/dry_run.py --base a22894a [--notebook reference_models/s3.ipynb] [--repeats 3]

The earlier commit is checked out in a temporary git worktree; both run the same
notebook alternately (so machine load hits both alike), each in a fresh process,
with the same MNIST. Prints each time, the medians, their ratio, the device, and
whether the structure facts (`model.*`) are the same.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def one_run(checkout: Path, notebook: Path) -> tuple[float, dict]:
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "grader", "check", str(notebook), "--dry-run", "--json"],
                          cwd=checkout, env=env, capture_output=True, text=True, timeout=900)
    seconds = time.monotonic() - started
    if done.returncode not in (0, 1):  # 1: a required item failed; the timing still counts
        raise SystemExit(f"{checkout}: grade check failed:\n{done.stderr[-2000:]}")
    return seconds, json.loads(done.stdout)["facts"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", required=True, help="the earlier commit to compare with")
    parser.add_argument("--notebook", type=Path, default=ROOT / "reference_models" / "s3.ipynb")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    notebook = args.notebook.resolve()
    with tempfile.TemporaryDirectory(prefix="dry-run-base-") as tmp:
        base = Path(tmp) / "base"
        subprocess.run(["git", "worktree", "add", "--detach", str(base), args.base], cwd=ROOT, check=True,
                       capture_output=True)
        try:
            times: dict[str, list[float]] = {"base": [], "this": []}
            facts: dict[str, dict] = {}
            for repeat in range(args.repeats):
                for name, checkout in (("base", base), ("this", ROOT)):
                    seconds, facts[name] = one_run(checkout, notebook)
                    times[name].append(seconds)
                    print(f"repeat {repeat + 1}: {name:4} {seconds:6.2f} s", flush=True)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(base)], cwd=ROOT, capture_output=True)
    medians = {name: statistics.median(values) for name, values in times.items()}
    print(f"device: {platform.machine()} CPU, {os.cpu_count()} cores, no GPU used "
          "(a dry run trains two batches per loader, once)")
    print(f"median dry run of {notebook.name}: {args.base} {medians['base']:.2f} s, this checkout "
          f"{medians['this']:.2f} s (x{medians['this'] / medians['base']:.2f})")
    base, this = facts["base"]["model"], _like(facts["this"]["model"], facts["base"]["model"])
    same = base == this
    added = sorted(_names(facts["this"]["model"]) - _names(base))
    print("structure facts the base has (model.*): " + ("the same" if same else "DIFFERENT")
          + (f"; facts added since: {', '.join(added)}" if added else ""))
    for key in sorted(k for k in base if base[k] != this.get(k)):
        print(f"  {key}: {base[key]!r} -> {this.get(key)!r}")
    return 0 if same else 1


def _like(value, shape):
    """`value` cut down to the keys `shape` has (facts added later are not a change)."""
    if isinstance(value, dict) and isinstance(shape, dict):
        return {k: _like(value.get(k), shape[k]) for k in shape}
    return value


def _names(tree, prefix="model."):
    names = set()
    for key, value in (tree or {}).items():
        names |= _names(value, f"{prefix}{key}.") if isinstance(value, dict) else {f"{prefix}{key}"}
    return names


if __name__ == "__main__":
    raise SystemExit(main())
