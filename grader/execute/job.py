"""Host side of executing one notebook: prepare the scratch, run the runner in the sandbox, read back.

Everything read back from the sandbox (run.json, harness.json) is the student's
process talking: it decides the verdict and the training counters, never the score.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import nbformat

from grader.execute.staging import TEST_IMAGES, data_binds
from grader.execute.verdict import decide
from grader.facts import TrainFacts, VerdictFacts
from grader.sandbox import SandboxSpec, run_sandboxed

OUT = ".grader"  # inside the working directory: the harness writes the model and its reports here


@dataclass(frozen=True)
class Limits:
    wall_seconds: float = 1800
    cell_seconds: Optional[float] = None  # default: the whole wall time
    memory_bytes: int = 6 << 30
    max_processes: int = 512
    max_file_bytes: int = 1 << 30
    output_bytes: int = 8 << 20


@dataclass(frozen=True)
class Execution:
    verdict: VerdictFacts
    train: TrainFacts
    harness: Optional[dict[str, Any]]
    out_dir: Path  # host path of the harness's output (model file, executed notebook)
    seconds: float
    limits_used: str


def _read_json(path: Path) -> Optional[dict[str, Any]]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _train_facts(harness: Optional[dict[str, Any]]) -> TrainFacts:
    counters = (harness or {}).get("counters") or {}
    try:
        return TrainFacts(epochs=counters.get("epochs"), optimizer_steps=counters.get("optimizer_steps"),
                          samples_seen=counters.get("samples_seen"), seconds=counters.get("seconds"),
                          device=counters.get("device"))
    except ValueError:  # the student's process wrote nonsense into its own counters
        return TrainFacts()


# what every sandboxed kernel prints and nobody needs to read: its TCP ports are inside the
# sandbox's own network namespace, where nothing else can listen (without the sandbox it is true: kept)
_KERNEL_NOISE = ("Kernel is running over TCP without encryption",)


def without_kernel_noise(text: str) -> str:
    return "".join(line for line in text.splitlines(keepends=True) if not any(n in line for n in _KERNEL_NOISE))


def execute_notebook(notebook: nbformat.NotebookNode, *, jobdir: Path, staged: Path, mnist_roots: tuple[str, ...],
                     variable: str, limits: Limits, dry_run: bool = False, sandbox: bool = True,
                     gpu: Optional[bool] = None, gpu_index: Optional[int] = None) -> Execution:
    workdir = (jobdir / "work").resolve()
    out_dir = workdir / OUT
    out_dir.mkdir(parents=True)
    nb_path = workdir / "submission.ipynb"
    nbformat.write(notebook, str(nb_path))
    images = workdir.parent / "data" / TEST_IMAGES  # ../data is bound read-only to the staged folder
    job = {
        "notebook": str(nb_path), "out_dir": str(out_dir), "workdir": str(workdir), "variable": variable,
        "cell_timeout": limits.cell_seconds or limits.wall_seconds, "output_limit": limits.output_bytes,
        "dry_run": dry_run, "images_file": str(images),
    }
    (out_dir / "job.json").write_text(json.dumps(job))
    spec = SandboxSpec(
        scratch=workdir, ro_binds=data_binds(staged, workdir, mnist_roots), wall_seconds=limits.wall_seconds,
        memory_bytes=limits.memory_bytes, max_processes=limits.max_processes, max_file_bytes=limits.max_file_bytes,
        max_output_bytes=1 << 20, gpu=gpu, gpu_index=gpu_index,
        env={"MPLBACKEND": "Agg", "JUPYTER_RUNTIME_DIR": "/tmp/jupyter", "IPYTHONDIR": "/tmp/ipython",
             "JUPYTER_PLATFORM_DIRS": "1", "PYTHONDONTWRITEBYTECODE": "1", "PYDEVD_DISABLE_FILE_VALIDATION": "1"},
    )
    result = run_sandboxed([sys.executable, "-P", "-m", "grader.execute.runner", str(out_dir / "job.json")], spec,
                           sandbox=sandbox)
    run = _read_json(out_dir / "run.json")
    harness = _read_json(out_dir / "harness.json")
    verdict = decide(timed_out=result.timed_out, memory_exceeded=result.memory_exceeded,
                     output_truncated=result.output_truncated, wall_seconds=limits.wall_seconds,
                     memory_bytes=limits.memory_bytes, run=run, harness=harness,
                     output_tail=(without_kernel_noise if sandbox else str)(result.stdout + result.stderr)[-4000:])
    return Execution(verdict, _train_facts(harness), harness, out_dir, result.seconds, result.limits_used)
