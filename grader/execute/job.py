"""Host side of executing one notebook: prepare the scratch, run the runner in the sandbox, read back.

Everything read back from the sandbox (run.json, harness.json) is the student's
process talking: it decides the verdict and the training counters, never the score.
It is read through grader.sandbox.readback only: fixed names, regular files, capped.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import nbformat

from grader.data.keras_mnist import INSIDE as KERAS_INSIDE, keras_npz
from grader.data.staging import TEST_IMAGES, data_binds
from grader.execute.records import HarnessRecord, RunRecord, not_taken, read_record
from grader.execute.run_job import RunJob
from grader.facts import TrainFacts
from grader.handin import HandIn, stage
from grader.sandbox import SandboxResult, SandboxSpec, run_sandboxed
from grader.sandbox.readback import Folder, ReadbackError
from grader.settings import Options

OUT = ".grader"  # inside the working directory: the harness writes the model and its reports here


@dataclass(frozen=True)
class Execution:
    """One sandboxed run of a notebook: how the sandbox ended it, and the records from inside (untrusted)."""

    sandbox: SandboxResult
    run: Optional[RunRecord]
    harness: Optional[HarnessRecord]
    malformed: Optional[str]  # a record that was there but did not validate
    output_tail: str
    out_dir: Path  # host path of the harness's output (model file, executed notebook): read through `output()`

    def output(self) -> Folder:
        """The harness's output folder, opened for reading what the sandbox left (grader.sandbox.readback);
        raises ReadbackError when the notebook replaced it."""
        return Folder(self.out_dir, OUT)

    @property
    def train(self) -> TrainFacts:
        counters = self.harness.counters if self.harness else None
        if counters is None:
            return TrainFacts()
        return self.observed.model_copy(update=dict(
            epochs=counters.epochs, optimizer_steps=counters.optimizer_steps, samples_seen=counters.samples_seen,
            batches_per_epoch=counters.batches_per_epoch, no_grad_batches=counters.no_grad_batches,
            optimizer_state_steps=counters.optimizer_state_steps, seconds=counters.seconds, device=counters.device))

    @property
    def observed(self) -> TrainFacts:
        """What the run says about the notebook besides the training counters (kept in a dry run too):
        the graded model's variable and why, the models trained, the compat shims used, pip installs it lacked."""
        harness = self.harness
        if harness is None:
            return TrainFacts()
        return TrainFacts(model_variable=harness.model_variable, model_reason=harness.model_found,
                          trained_models=[t.variable for t in harness.trained_models],
                          compat_shims=list(harness.compat_used),
                          pip_missing=sorted({p.package for p in harness.pip_asked if p.version is None}))


# what every sandboxed kernel prints and nobody needs to read: its TCP ports are inside the
# sandbox's own network namespace, where nothing else can listen (without the sandbox it is true: kept)
_KERNEL_NOISE = ("Kernel is running over TCP without encryption",)


def without_kernel_noise(text: str) -> str:
    return "".join(line for line in text.splitlines(keepends=True) if not any(n in line for n in _KERNEL_NOISE))


# `import keras`, and keras through tensorflow: `from tensorflow import keras`, `tensorflow.keras`, `tf.keras`
_KERAS_IMPORT = re.compile(r"^\s*(from|import)\s+keras\b|\b(tensorflow|tf)\.keras\b|"
                           r"^\s*from\s+tensorflow\s+import\s[^\n#]*\bkeras\b", re.M)


def imports_keras(notebook: nbformat.NotebookNode, modules: tuple[Path, ...] = ()) -> bool:
    """Whether a code cell, or a module handed in with the notebook (`modules`: the staged `.py` files, the grader's
    own copies), uses keras (Keras 3 runs on the torch backend here; the tf-keras compat profile reads Keras
    through tensorflow as Keras 3)."""
    if any(c.cell_type == "code" and _KERAS_IMPORT.search(c.source) for c in notebook.cells):
        return True
    return any(_KERAS_IMPORT.search(path.read_text(errors="replace")) for path in modules)


def execute_notebook(notebook: nbformat.NotebookNode, options: Options, *, jobdir: Path, staged: Path,
                     mnist_roots: tuple[str, ...], handin: Optional[HandIn] = None) -> Execution:
    """Run the notebook in the sandbox as `options` say: its limits, the model's variable (`variable_named`: grade
    `variable` itself, else the module that training updated), the grading environment's venv the kernel runs in
    (`environment`; None: the grader's own interpreter), the compat profiles whose shims load first, the GPU.
    `staged`: the MNIST folder (grader.data.staging), shown read-only where the notebook's `mnist_roots` look.
    `handin`: the files staged with the notebook (grader.handin), laid out as handed in: the notebook's folder is
    the kernel's working directory, and it and the hand-in's root are on sys.path."""
    workdir = (jobdir / "work").resolve()
    out_dir = workdir / OUT
    out_dir.mkdir(parents=True)
    if handin is not None:
        nb_dir = stage(handin, workdir)
        name = Path(handin.notebook).name
        nb_path = nb_dir / (name if name.endswith(".ipynb") else Path(name).stem + ".ipynb")
    else:
        nb_dir, nb_path = workdir, workdir / "submission.ipynb"
    nbformat.write(notebook, str(nb_path))
    environment, limits = options.environment, options.limits
    job = RunJob(
        notebook=str(nb_path), out_dir=str(out_dir), workdir=str(nb_dir), root=str(workdir),
        variable=options.variable, variable_named=options.variable_named,
        cell_timeout=limits.cell_limit, output_limit=limits.output_bytes, dry_run=options.dry_run,
        images_file=str(workdir.parent / "data" / TEST_IMAGES),  # ../data is bound read-only to the staged folder
        kernel_python=str(Path(environment) / "bin" / "python") if environment else None, compat=options.compat,
        keras=imports_keras(notebook, tuple(handin.root / f.path for f in handin.files if f.path.endswith(".py"))
                            if handin is not None else ()),
    )
    # the venv is shown read-only at its own path (its python links into the grader's base prefix, bound already)
    env_binds: tuple[tuple[Path, Path], ...] = ((Path(environment), Path(environment)),) if environment else ()
    if job.keras:  # HOME is the scratch: MNIST where keras.datasets.mnist.load_data() looks
        env_binds += ((keras_npz(staged), workdir / KERAS_INSIDE),)
    (out_dir / "job.json").write_text(job.model_dump_json())
    spec = SandboxSpec.for_run(
        limits, scratch=workdir, ro_binds=data_binds(staged, workdir, mnist_roots, base=nb_dir) + env_binds,
        max_output_bytes=1 << 20, gpu=options.gpu, gpu_index=options.gpu_index,
        env={"MPLBACKEND": "Agg", "JUPYTER_RUNTIME_DIR": "/tmp/jupyter", "IPYTHONDIR": "/tmp/ipython",
             "KERAS_BACKEND": "torch", "JUPYTER_PLATFORM_DIRS": "1", "PYTHONDONTWRITEBYTECODE": "1",
             "PYDEVD_DISABLE_FILE_VALIDATION": "1"},
    )
    result = run_sandboxed([sys.executable, "-P", "-m", "grader.execute.runner", str(out_dir / "job.json")], spec,
                           sandbox=options.sandbox)
    try:
        with Folder(out_dir, OUT) as out:
            run, bad_run = read_record(out, "run.json", RunRecord)
            harness, bad_harness = read_record(out, "harness.json", HarnessRecord)
    except ReadbackError as err:  # the notebook replaced the output folder itself
        run = harness = bad_harness = None
        bad_run = not_taken(str(err), OUT)
    tail = (without_kernel_noise if options.sandbox else str)(result.stdout + result.stderr)[-4000:]
    return Execution(result, run, harness, bad_run or bad_harness, tail, out_dir)
