"""Submissions per minute, each way of grading side by side in one run, on the device it names.

    python bench/throughput.py [--copies 4] [--train-copies 3] [--nbgrader-venv DIR] [--skip-execute] [--skip-ray]

Evaluate mode (the exported models are measured, no notebook runs): the bundled example class, copied `--copies`
times under new student ids, graded through the grading API

- with the warm evaluator at `--jobs 1` and `--jobs 2` (local executor), and through Ray (a local Ray started here
  with this machine's cores; its start-up is timed apart);
- with a fresh sandbox per submission (`GRADER_WARM_EVAL=0`), the way every model was measured before;
- against the bare compute: one process that imports torch once, loads each exported model and predicts the
  10,000 test images with as many threads as one job gets (at `--jobs 1`, every core; at `--jobs 2` on 2 cores,
  one each), and nothing else.

Execute mode (each notebook trains for one epoch on the 60,000 training images): `--train-copies` students, graded
at `--jobs 1` and `--jobs 2`, against nbgrader `autograde` on the same notebook, serial
(../shared/peers/nbgrader_autograde.sh, from a throwaway venv: `--nbgrader-venv`, made with
`python3 -m venv --system-site-packages DIR && DIR/bin/pip install nbgrader`; nbgrader is the yardstick, not a
dependency). With a GPU, the same training batch at 1, 4 and 8 jobs per GPU.

Every run of the grader starts from an empty output folder (nothing cached) and a cold warm-evaluator (its zygote's
start is in the figure). Prints a Markdown table of seconds, submissions per minute and ratios.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Optional

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import nbformat  # noqa: E402
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook  # noqa: E402

from grader.api import executor_for, grade_class, load_rubric, options_for, prepare_test_data  # noqa: E402
from grader.evaluate import warm  # noqa: E402
from grader.executors import gpu_indices  # noqa: E402

EXAMPLES = ROOT / "examples" / "submissions"
RUBRIC = ROOT / "rubrics" / "mnist-s3.yaml"
NBGRADER = ROOT.parent / "shared" / "peers" / "nbgrader_autograde.sh"

BARE = r"""
import sys, time
started = time.monotonic()
import numpy as np, torch
torch.set_num_threads(int(sys.argv[1]))
images = np.load(sys.argv[2])
scale, shift = float(sys.argv[3]), float(sys.argv[4])
inputs = torch.from_numpy(images.astype(np.float32) / 255.0).unsqueeze(1) * scale + shift
for path in sys.argv[5:]:
    model = torch.export.load(path).module()
    with torch.no_grad():
        predictions = torch.cat([model(inputs[i:i + 1000]).argmax(1) for i in range(0, len(inputs), 1000)])
    assert len(predictions) == len(images)
print(time.monotonic() - started)
"""

# One epoch over the 60,000 training images with a small course-style net, read from ../data like the course's
# notebooks; every code cell commented, so it grades like a student's.
TRAINING = [
    "# the network: 3x3 blocks, a max-pool and a 1x1 transition, global average pooling, no linear layer\n"
    "import torch, torch.nn as nn, torch.nn.functional as F\n"
    "from torchvision import datasets, transforms\n"
    "torch.manual_seed(0)\n"
    "model = nn.Sequential(nn.Conv2d(1, 16, 3), nn.ReLU(), nn.BatchNorm2d(16), nn.Conv2d(16, 16, 3), nn.ReLU(),\n"
    "                      nn.BatchNorm2d(16), nn.MaxPool2d(2), nn.Conv2d(16, 10, 1), nn.Conv2d(10, 16, 3), "
    "nn.ReLU(),\n"
    "                      nn.BatchNorm2d(16), nn.Conv2d(16, 10, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(),\n"
    "                      nn.LogSoftmax(-1))\n"
    "device = 'cuda' if torch.cuda.is_available() else 'cpu'  # the GPU the grader gives this job, if any\n"
    "model = model.to(device)\n",
    "# the data, normalised with MNIST's mean and standard deviation\n"
    "tf = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.1307,), (0.3081,))])\n"
    "train = datasets.MNIST('../data', train=True, download=True, transform=tf)\n"
    "test = datasets.MNIST('../data', train=False, download=True, transform=tf)\n"
    "loader = torch.utils.data.DataLoader(train, batch_size=128, shuffle=True, num_workers=2)\n",
    "# one epoch of training\n"
    "opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)\n"
    "for epoch in range(1):\n"
    "    model.train()\n"
    "    for x, y in loader:\n"
    "        x, y = x.to(device), y.to(device)\n"
    "        opt.zero_grad()\n"
    "        F.nll_loss(model(x), y).backward()\n"
    "        opt.step()\n",
    "# test accuracy\n"
    "model.eval()\n"
    "correct = 0\n"
    "with torch.no_grad():\n"
    "    for x, y in torch.utils.data.DataLoader(test, batch_size=1000):\n"
    "        correct += (model(x.to(device)).argmax(1).cpu() == y).sum().item()\n"
    "print(f'Test accuracy: {100 * correct / len(test):.2f}%')\n",
]


def device() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpus = gpu_indices()
    gpu = "no GPU"
    if gpus:
        try:
            gpu = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True,
                                 text=True, timeout=30).stdout.strip().replace("\n", ", ")
        except OSError:
            gpu = f"{len(gpus)} GPU(s)"
    return f"{cpu}, {os.cpu_count()} cores, {gpu}; load average before: {os.getloadavg()[0]:.2f}"


def evaluate_class(root: Path, copies: int) -> Path:
    """The example class (notebook + exported model per student) `copies` times, each copy under new ids."""
    out = root / "evaluate-class"
    for copy in range(copies):
        for folder in sorted(EXAMPLES.iterdir()):
            name, sid, rest = folder.name.split("_", 2)
            shutil.copytree(folder, out / f"{name}_{int(sid) + 1000 * copy}_{rest}")
    return out


def training_class(root: Path, copies: int, name: str = "training-class") -> tuple[Path, Path]:
    """`copies` students handing in the same one-epoch training notebook; also the notebook alone for nbgrader."""
    nb = new_notebook(cells=[new_markdown_cell("# One epoch on MNIST")] + [new_code_cell(c) for c in TRAINING])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    out = root / name
    for i in range(copies):
        folder = out / f"Student {i}_{2001 + i}_assignsubmission_file_"
        folder.mkdir(parents=True)
        nbformat.write(nb, str(folder / "train.ipynb"))
    single = root / "train.ipynb"
    nbformat.write(nb, str(single))
    return out, single


def timed(what: Callable[[], int]) -> tuple[float, int]:
    started = time.monotonic()
    count = what()
    return time.monotonic() - started, count


CPUS: Optional[int] = None  # --cpus: every job's budget fixed (None: the cores shared by the jobs at once)


def grade(source: Path, out: Path, mode: str, *, executor: str = "local", jobs: Optional[int] = None,
          address: Optional[str] = None, gpu: Optional[bool] = False, jobs_per_gpu: Optional[int] = None,
          expect: Optional[int] = None) -> tuple[float, int]:
    rubric = load_rubric(RUBRIC)
    overrides = {"mode": mode, "gpu": gpu}
    options = options_for(rubric, **overrides)
    if jobs_per_gpu:
        options = options.with_(limits=options.limits.model_copy(update={"jobs_per_gpu": jobs_per_gpu}))
    if CPUS:
        options = options.with_(limits=options.limits.model_copy(update={"cpus": CPUS}))
    data = prepare_test_data(options.data)
    warm.close_all()  # every run pays its own zygote's start

    def run() -> int:
        with executor_for(executor, address, jobs, options) as chosen:
            results = list(grade_class(source, rubric, options, out=out, executor=chosen, force=True, data=data))
        return len(results)

    seconds, count = timed(run)
    if expect is not None and count != expect:
        raise SystemExit(f"{executor} jobs={jobs}: {count} results for {expect} submissions")
    return seconds, count


def bare_compute(models: list[Path], cpus: int) -> float:
    from grader.data.preprocess import COURSE_PREPROCESS
    from grader.data.staging import TEST_IMAGES

    data = prepare_test_data(None)
    started = time.monotonic()
    subprocess.run([sys.executable, "-c", BARE, str(cpus), str(data.staged / TEST_IMAGES),
                    str(COURSE_PREPROCESS.scale), str(COURSE_PREPROCESS.shift), *map(str, models)], check=True,
                   capture_output=True, env={**os.environ, "OMP_NUM_THREADS": str(cpus)})
    return time.monotonic() - started


def row(label: str, seconds: float, count: int, base: Optional[float] = None, base_label: str = "") -> str:
    per_minute = 60 * count / seconds
    ratio = (f"{seconds / base:.2f}x the time of {base_label} ({base / seconds:.2f}x its throughput)"
             if base else "")
    print(f"| {label} | {count} | {seconds:.1f} | {per_minute:.1f} | {ratio} |", flush=True)
    return label


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--copies", type=int, default=4, help="copies of the 5-student example class (default 4: 20)")
    parser.add_argument("--train-copies", type=int, default=3, help="students in the training class (default 3)")
    parser.add_argument("--nbgrader-venv", type=Path, help="a venv with nbgrader (and torch through system site)")
    parser.add_argument("--skip-execute", action="store_true", help="evaluate mode only")
    parser.add_argument("--skip-ray", action="store_true", help="no Ray runs")
    parser.add_argument("--skip-cold", action="store_true", help="no fresh-sandbox-per-submission run")
    parser.add_argument("--skip-evaluate", action="store_true", help="execute mode only")
    parser.add_argument("--cpus", type=int, help="fix every job's CPU budget (default: the cores shared by the "
                                                 "jobs at once, so --jobs 1 uses every core)")
    args = parser.parse_args()
    global CPUS
    CPUS = args.cpus
    print(f"Device: {device()}", flush=True)
    print(f"CPU budget per job: {f'{CPUS} (--cpus)' if CPUS else 'the cores shared by the jobs at once'}\n", flush=True)
    with tempfile.TemporaryDirectory(prefix="mnist-grader-throughput-") as tmp:
        root = Path(tmp)
        source = evaluate_class(root, args.copies)
        n = 5 * args.copies
        models = sorted(source.glob("*/model.pt2"))
        print("| run | submissions | seconds | per minute | ratio |\n|---|---|---|---|---|", flush=True)
        if not args.skip_evaluate:
            cores = os.cpu_count() or 1
            one, two = (CPUS, CPUS) if CPUS else (cores, max(1, cores // 2))  # threads per job at --jobs 1, 2
            bare = bare_compute(models, cpus=one)
            row(f"evaluate: bare compute (1 process, torch imported once, {one} thread(s): --jobs 1's budget)",
                bare, n)
            jobs1, _ = grade(source, root / "o-jobs1", "evaluate", jobs=1, expect=n)
            row(f"evaluate: warm, --jobs 1 ({one} thread(s))", jobs1, n, bare, "bare compute")
            jobs2, _ = grade(source, root / "o-jobs2", "evaluate", jobs=2, expect=n)
            row(f"evaluate: warm, --jobs 2 ({two} thread(s) each)", jobs2, n, jobs1, "--jobs 1")
            if one != 1:
                bare1 = bare_compute(models, cpus=1)
                row("evaluate: bare compute, 1 thread", bare1, n, bare, f"bare compute at {one} threads")
            if not args.skip_ray:
                import ray

                started = time.monotonic()
                ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
                ray_start = time.monotonic() - started
                try:
                    seconds, _ = grade(source, root / "o-ray", "evaluate", executor="ray", address="auto", expect=n)
                    row(f"evaluate: Ray, local, {os.cpu_count()} CPUs (ray.init {ray_start:.1f} s not counted)",
                        seconds, n, jobs1, "--jobs 1")
                    seconds, _ = grade(source, root / "o-ray2", "evaluate", executor="ray", address="auto", expect=n)
                    row("evaluate: Ray again (workers and their zygotes already warm)", seconds, n, jobs1, "--jobs 1")
                finally:
                    ray.shutdown()
            if not args.skip_cold:
                os.environ["GRADER_WARM_EVAL"] = "0"
                try:
                    cold, _ = grade(source, root / "o-cold", "evaluate", jobs=1, expect=n)
                finally:
                    del os.environ["GRADER_WARM_EVAL"]
                row("evaluate: a fresh sandbox per submission (before), --jobs 1", cold, n, jobs1, "warm --jobs 1")
        if args.skip_execute:
            return 0
        train, single = training_class(root, args.train_copies)
        t = args.train_copies
        e1, _ = grade(train, root / "t-jobs1", "execute", jobs=1, expect=t)
        nb_seconds = None
        if args.nbgrader_venv is not None:
            done = subprocess.run(["bash", str(NBGRADER), str(args.nbgrader_venv), str(single), str(t),
                                   str(prepare_test_data(None).folder)], capture_output=True, text=True)
            if done.returncode != 0:
                print(f"nbgrader failed: {done.stderr[-1500:]}", file=sys.stderr)
            else:
                nb_seconds = float(done.stdout.strip().split(" in ")[1].split()[0])
                row("execute: nbgrader autograde, serial, no sandbox", nb_seconds, t)
        row("execute: ours, --jobs 1", e1, t, nb_seconds, "nbgrader")
        e2, _ = grade(train, root / "t-jobs2", "execute", jobs=2, expect=t)
        row("execute: ours, --jobs 2", e2, t, e1, "--jobs 1")
        gpus = gpu_indices()
        if gpus:
            packed = 8 * len(gpus)  # enough notebooks to fill 8 slots per GPU
            batch, _ = training_class(root, packed, "gpu-class")
            one = None
            for per_gpu in (1, 4, 8):
                seconds, _ = grade(batch, root / f"g{per_gpu}", "execute", jobs=len(gpus) * per_gpu, gpu=True,
                                   jobs_per_gpu=per_gpu, expect=packed)
                one = one or seconds
                row(f"execute on GPU: {per_gpu} per GPU", seconds, packed, one, "1 per GPU")
        else:
            print("\nNo GPU on this machine: the per-GPU packing runs (1, 4, 8 jobs per GPU) were not measured.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
