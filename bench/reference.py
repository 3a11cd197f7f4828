"""Train each reference network for its epoch budget over several seeds and report what it reaches.

    python bench/reference.py                          # every reference, seeds 0 1 2, real MNIST
    python bench/reference.py s5 --seeds 0 --threads 1 --record /tmp/runs.jsonl
    python bench/reference.py --summarize /tmp/runs.jsonl   # the table of runs recorded by several processes

Per model: trainable parameters, epochs, best / last / mean-of-last-3 test
accuracy (min and max over seeds), seconds per epoch (training plus the test
pass) and the device. Progress is printed after every epoch. The figures in
reference_models/RESULTS.md come from here.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import asdict
from datetime import date
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from grader.data import find_mnist, load_mnist  # noqa: E402
from reference_models.nets import REFERENCES  # noqa: E402
from reference_models.train import NORMALIZE, DeviceMNIST, Run, fit, to_device_tensors  # noqa: E402

TARGET = 99.4


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="*", default=list(REFERENCES),
                        help=f"references to train (default: all of {', '.join(REFERENCES)})")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, help="override every model's epoch budget (for a quick look)")
    parser.add_argument("--data", help="folder with the MNIST files (default: where `grade data` finds them)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, help="torch CPU threads (1 on a shared machine)")
    parser.add_argument("--record", type=Path, help="append one JSON line per finished run to this file")
    parser.add_argument("--summarize", type=Path, metavar="RECORD", help="print the table of a record file and exit")
    args = parser.parse_args(argv)

    if args.summarize:
        records = [json.loads(line) for line in args.summarize.read_text().splitlines() if line.strip()]
        print(table([Run(**{k: v for k, v in r.items() if k != "date"}) for r in records]))
        return 0
    unknown = [m for m in args.models if m not in REFERENCES]
    if unknown:
        parser.error(f"unknown reference(s) {', '.join(unknown)}; choose from {', '.join(REFERENCES)}")
    if args.threads:
        torch.set_num_threads(args.threads)
    root = args.data or find_mnist()
    if root is None:
        parser.error("no MNIST found: pass --data or run `grade data fetch`")
    device = torch.device(args.device)
    train_set = DeviceMNIST(*to_device_tensors(*_split(root, "train"), NORMALIZE, device), train=True)
    test_set = DeviceMNIST(*to_device_tensors(*_split(root, "test"), NORMALIZE, device), train=False)

    runs = []
    for name in args.models:
        for seed in args.seeds:
            print(f"== {name} seed {seed} on {device} ({torch.get_num_threads()} threads)", flush=True)
            run = fit(REFERENCES[name], seed, train_set, test_set, epochs=args.epochs, on_epoch=_progress)
            runs.append(run)
            if args.record:
                with args.record.open("a") as out:
                    out.write(json.dumps({**asdict(run), "date": date.today().isoformat()}) + "\n")
    print(table(runs))
    return 0


def _split(root, split: str):
    data = load_mnist(root, split)
    return data.images, data.labels


def _progress(run: Run) -> None:
    epoch = len(run.accuracies)
    print(f"{run.name} seed {run.seed} epoch {epoch:2d}: train loss {run.train_losses[-1]:.4f}  "
          f"test {run.accuracies[-1]:.2f}%  {run.epoch_seconds[-1]:.1f} s  ({time.strftime('%H:%M:%S')})", flush=True)


def table(runs: list[Run]) -> str:
    """A markdown table, one row per (model, device): figures as min-max over seeds."""
    groups: dict[tuple[str, str, int], list[Run]] = {}
    for run in runs:
        groups.setdefault((run.name, run.device.split(":")[0], len(run.accuracies)), []).append(run)
    lines = ["| model | params | epochs | seeds | best | last | mean of last 3 | last 3 all >= 99.4 | s/epoch "
             "| device |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for (name, device, epochs), group in groups.items():
        best = [max(r.accuracies) for r in group]
        last = [r.accuracies[-1] for r in group]
        last3 = [statistics.fmean(r.accuracies[-3:]) for r in group]
        steady = sum(min(r.accuracies[-3:]) >= TARGET for r in group)
        seconds = statistics.fmean(s for r in group for s in r.epoch_seconds)
        lines.append(f"| {name} | {group[0].params:,} | {epochs} | {' '.join(str(r.seed) for r in group)} | "
                     f"{_span(best)} | {_span(last)} | {_span(last3)} | {steady}/{len(group)} | {seconds:.1f} "
                     f"| {device} |")
    return "\n".join(lines)


def _span(values: list[float]) -> str:
    low, high = min(values), max(values)
    return f"{low:.2f}" if round(low, 2) == round(high, 2) else f"{low:.2f}-{high:.2f}"


if __name__ == "__main__":
    raise SystemExit(main())
