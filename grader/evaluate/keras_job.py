"""Host side of the clean evaluation of a Keras model: the `.keras` file in a fresh sandbox, run with the grading
environment's Python (where keras is), predictions scored against labels the sandbox never saw, and the
structure facts from the layer list through the arch engine, as for a torch model."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from grader.arch.keras_layers import keras_table
from grader.arch.stored_state import count
from grader.arch.structure import structure_facts
from grader.data.staging import TEST_IMAGES
from grader.errors import GraderError
from grader.evaluate.eval_jobs import KerasJob
from grader.evaluate.job import Evaluation, copy_model, read_back
from grader.evaluate.metrics import metrics
from grader.facts import EvalFacts, ModelFacts, OpsFacts, StoredFacts
from grader.sandbox import SandboxSpec, run_sandboxed
from grader.sandbox.failure import sandbox_failure
from grader.sandbox.readback import Folder
from grader.settings import Options


@dataclass(frozen=True)
class _Weight:
    """A Keras weight as the stored-state count reads a tensor."""

    shape: tuple[int, ...]
    requires_grad: bool

    def numel(self) -> int:
        return int(np.prod(self.shape)) if self.shape else 1


def stored_weights(weights: list[dict]) -> StoredFacts:
    """`model.stored.*` of a Keras model as of a torch one: trainable weights, frozen ones (non-trainable, not
    batch-norm statistics), and the moving mean / variance as batch-norm statistics."""
    params = [(w["name"], _Weight(tuple(w["shape"]), w["trainable"])) for w in weights if not w["bn_stat"]]
    stats = [(w["name"], _Weight(tuple(w["shape"]), False)) for w in weights if w["bn_stat"]]
    return count(params=params, buffers=stats, constants=[], bn={name for name, _ in stats})


def evaluate_keras_model(model: Folder, name: str, options: Options, *, layout: Optional[str], scale: float,
                         shift: float, staged: Path, labels: Optional[np.ndarray], jobdir: Path) -> Evaluation:
    """Measure the saved Keras model `name` in the folder `model` (what the sandbox left) with the grading
    environment's Python (`options.environment`: its venv; None: the grader's own), from a copy of ours, under
    `options`' limits. Without `labels` only its structure is read (a dry run)."""
    scratch, local_model, unread = copy_model(model, name, jobdir)
    if unread is not None:
        return Evaluation(EvalFacts(path="keras"), None, None, unread)
    images = scratch / TEST_IMAGES  # images only: the labels never enter the sandbox
    job = KerasJob(model_file=str(local_model), images_file=str(images), out_dir=str(scratch), layout=layout,
                   scale=float(scale), shift=float(shift), predict=labels is not None)
    (scratch / "job.json").write_text(job.model_dump_json())
    environment, limits = options.environment, options.limits
    binds = ((staged / TEST_IMAGES, images),) + (((Path(environment), Path(environment)),) if environment else ())
    spec = SandboxSpec.for_run(limits, scratch=scratch, wall_seconds=limits.eval_seconds, ro_binds=binds,
                               max_output_bytes=1 << 20, gpu=options.gpu,
                               env={"PYTHONDONTWRITEBYTECODE": "1", "KERAS_BACKEND": "torch"})
    python = str(Path(environment) / "bin" / "python") if environment else sys.executable
    result = run_sandboxed([python, "-P", "-m", "grader.evaluate.keras_clean", str(scratch / "job.json")], spec,
                           sandbox=options.sandbox)
    raw = read_back(scratch, (result.stderr or result.stdout)[-1500:])
    record = raw.record
    if raw.problem is not None:
        return Evaluation(EvalFacts(path="keras"), None, None, raw.problem)
    if record is None:
        return Evaluation(EvalFacts(path="keras"), None, None, f"the evaluation process did not finish: {raw.tail}",
                          host_failure=sandbox_failure(result, record_written=False))
    if "error" in record:
        return Evaluation(EvalFacts(path="keras"), None, None,
                          f"the saved Keras model was not measured: {record['error']}")
    model_facts: Optional[ModelFacts] = None
    arch_error: Optional[str] = None
    try:
        model_facts = structure_facts(keras_table(record["config"]), trainable=record["params"]["trainable"],
                                      total=record["params"]["total"])
        stored = stored_weights(record["weights"])
        assert stored.buffers is not None and stored.bn_stats is not None, "stored_weights counts every kind"
        # keras_table read every layer (it refuses any other), and safe_mode=True loaded no Lambda or student
        # class: convolutions, pooling, batch norm, dropout, activations, flatten and dense look nothing up
        model_facts = model_facts.model_copy(update={"stored": stored, "buffers": stored.buffers + stored.bn_stats,
                                                     "ops": OpsFacts(unexpected=[])})
    except GraderError as err:
        arch_error = err.render()
    if labels is None:
        return Evaluation(EvalFacts(), model_facts, record.get("device"), None, arch_error)
    predictions = raw.predictions if raw.predictions is not None else np.zeros(0)
    if predictions.shape != labels.shape:
        return Evaluation(EvalFacts(path="keras"), None, record.get("device"),
                          f"the model gave {len(predictions)} predictions for {len(labels)} test images")
    return Evaluation(metrics(predictions, labels, "keras"), model_facts, record.get("device"), None, arch_error)
