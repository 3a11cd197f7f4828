"""Runs in a fresh sandbox: load the exported model, predict the 10,000 test images.

    python -m grader.evaluate.clean JOB.json

Imports torch and the grader only: the model comes from a torch.export program, so no student code is imported.
Nothing in the file runs or is unpickled beyond plain tensors: grader.evaluate.archive reads the archive first and
refuses what torch's loader would run (pickled objects, guard code, symbolic shapes that are not arithmetic,
callables that are not torch's operators), and torch.load is held to weights_only. The test labels are never
here: this process writes predictions, and the host compares them with the labels.
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from grader.evaluate.eval_jobs import EvalJob

if TYPE_CHECKING:  # for the annotations: the functions that use numpy import it themselves
    import numpy as np


@dataclass
class EvalRecord:
    device: str
    seconds: float
    n: int
    model: dict | None = None  # ModelFacts from the exported graph
    arch_error: str | None = None


def _load(job: EvalJob, model_bytes: bytes | None = None):
    """The program and its module from the file, or from `model_bytes` (the warm evaluator's child reads it from
    a descriptor). Raises RefusedModel for a file that loading would have to run or unpickle."""
    import io

    import torch

    from grader.evaluate.archive import PT2_ADVICE, RefusedModel, check_program

    if model_bytes is None:
        model_bytes = Path(job.model_file).read_bytes()
    checked = check_program(model_bytes)
    if not checked.ok:
        raise RefusedModel(Path(job.model_file).name or "model.pt2", checked.refusals, PT2_ADVICE)
    assert checked.archive is not None, "check_program rebuilds the archive of a model it refuses nothing in"
    forced = {"TORCH_FORCE_WEIGHTS_ONLY_LOAD": "1", "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": None}
    before = {name: os.environ.get(name) for name in forced}
    _set_env(forced)  # torch.export retries a failed weights_only load with weights_only=False: not here
    try:
        program = torch.export.load(io.BytesIO(checked.archive))
    finally:
        _set_env(before)
    return program.module(check_guards=False), program  # guards are Python source the module would exec


def _set_env(values: dict[str, str | None]) -> None:
    for name, value in values.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def _inputs(job: EvalJob, batch: int, images):
    """The test inputs, `batch` images at a time: made here from the raw digits (uint8, N x 28 x 28), never by
    student code."""
    import numpy as np
    import torch

    if job.steps is None:
        assert job.scale is not None and job.shift is not None, "an EvalJob without steps has its affine map"
        inputs = torch.from_numpy(images.astype(np.float32) / 255.0).unsqueeze(1) * job.scale + job.shift
        yield from (inputs[i:i + batch] for i in range(0, len(inputs), batch))
        return
    from grader.data.transforms import STEPS, build

    transform = build(STEPS.validate_python(job.steps))
    for i in range(0, len(images), batch):  # a Resize(224) of 10,000 digits at once would not fit
        yield torch.stack([transform(image) for image in images[i:i + batch]]).float()


def _architecture(program) -> tuple[dict | None, str | None]:
    """Structure facts read from the exported graph (not from the student's classes): the layer table, every
    number the program stores, and the operators a CNN does not need. Each part is kept when another fails."""
    from grader.arch.graph_ops import unexpected_ops
    from grader.arch.stored_state import stored_state
    from grader.arch.structure import structure_facts
    from grader.arch.torch_graph import table_from_program
    from grader.facts import ModelFacts, OpsFacts, ParamFacts

    errors: list[str] = []
    update: dict[str, Any] = {}
    try:
        stored = stored_state(program)
        assert stored.trainable is not None and stored.frozen is not None, "stored_state counts every kind"
        assert stored.buffers is not None and stored.bn_stats is not None, "stored_state counts every kind"
        update.update(stored=stored, buffers=stored.buffers + stored.bn_stats,
                      params=ParamFacts(trainable=stored.trainable, total=stored.trainable + stored.frozen))
    except Exception as exc:  # the score does not depend on it: keep going, say why it is missing
        errors.append(f"stored state: {exc.__class__.__name__}: {exc}")
    try:
        update["ops"] = OpsFacts(unexpected=unexpected_ops(program))
    except Exception as exc:
        errors.append(f"graph operators: {exc.__class__.__name__}: {exc}")
    try:
        facts = structure_facts(table_from_program(program))
    except Exception as exc:
        errors.append(f"{exc.__class__.__name__}: {exc}")
        facts = ModelFacts()
    if not update and errors:
        return None, "; ".join(errors)
    return facts.model_copy(update=update).model_dump(mode="json"), "; ".join(errors) or None


@dataclass
class Measured:
    record: EvalRecord
    predictions: np.ndarray | None = None  # int64 array of the test images' predicted classes (None: structure only)
    unseen_predictions: np.ndarray | None = None


def measure(job: EvalJob, *, images=None, unseen_images=None, model_bytes: bytes | None = None) -> Measured:
    """Load the model and predict. `images` / `unseen_images`: the arrays already in memory (the warm evaluator
    loads them once); otherwise read from the job's files."""
    import numpy as np
    import torch

    started = time.time()
    device = ("cuda" if torch.cuda.is_available() else "cpu") if job.device == "auto" else job.device
    model, program = _load(job, model_bytes)
    model_facts, arch_error = _architecture(program)
    if not job.predict:
        return Measured(EvalRecord(device, round(time.time() - started, 3), 0, model_facts, arch_error))
    model = model.to(device)
    predictions = _predict(model, job, device, np.load(job.images_file) if images is None else images)
    unseen = None
    if job.unseen_images_file:
        digits = np.load(job.unseen_images_file) if unseen_images is None else unseen_images
        unseen = _predict(model, job, device, digits)
    return Measured(EvalRecord(device, round(time.time() - started, 3), int(len(predictions)), model_facts, arch_error),
                    predictions, unseen)


def evaluate(job: EvalJob) -> EvalRecord:
    """The cold path: everything from files, the predictions written beside the job."""
    import numpy as np

    measured = measure(job)
    if measured.predictions is not None:
        np.save(Path(job.out_dir) / "predictions.npy", measured.predictions)
    if measured.unseen_predictions is not None:
        np.save(Path(job.out_dir) / "unseen_predictions.npy", measured.unseen_predictions)
    return measured.record


def _predict(model, job: EvalJob, device: str, images):
    import numpy as np
    import torch

    batch = job.static_batch or 1000
    preds = []
    with torch.no_grad():
        for chunk in _inputs(job, batch, images):
            short = batch - len(chunk) if job.static_batch else 0
            if short:  # an export pinned to one batch size: pad the last chunk
                chunk = torch.cat([chunk, chunk.new_zeros((short, *chunk.shape[1:]))])
            out = model(chunk.to(device))
            preds.append(out.argmax(1).cpu()[: len(chunk) - short])
    return torch.cat(preds).numpy().astype(np.int64)


def main(argv: list[str]) -> int:
    job = EvalJob.model_validate_json(Path(argv[0]).read_text())
    try:
        record = asdict(evaluate(job))
    except Exception as exc:
        record = {"error": f"{exc.__class__.__name__}: {exc}"}
    (Path(job.out_dir) / "eval.json").write_text(json.dumps(record))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
