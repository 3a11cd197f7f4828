"""Host side of the clean evaluation: copy the exported model into a fresh scratch, predict in a new sandbox,
score the predictions against labels the sandbox never saw."""

from __future__ import annotations

import json
import logging
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from grader.data.preprocess import Preprocess
from grader.data.staging import TEST_IMAGES, UNSEEN_IMAGES
from grader.evaluate import warm as warm_evaluator
from grader.evaluate.metrics import metrics
from grader.facts import EvalFacts, ModelFacts
from grader.sandbox import SandboxSpec, run_sandboxed
from grader.settings import RunLimits

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Evaluation:
    eval: EvalFacts
    model: Optional[ModelFacts]
    device: Optional[str]
    error: Optional[str]  # why accuracy could not be measured
    arch_error: Optional[str] = None
    lookup: Optional[str] = None  # why the accuracy is not credited: the graph looks answers up (model.ops.unexpected)


def evaluate_model(model_file: Path, path: str, *, preprocess: Preprocess, staged: Path,
                   labels: Optional[np.ndarray], jobdir: Path, limits: RunLimits, static_batch: Optional[int] = None,
                   sandbox: bool = True, gpu: Optional[bool] = None,
                   unseen: Optional[tuple[Path, np.ndarray]] = None, warm: bool = True) -> Evaluation:
    """Measure an exported model: in a child of the warm evaluator (`warm`, on the CPU, unless GRADER_WARM_EVAL=0),
    else in a fresh sandbox. Without `labels` it only reads the structure (a dry run:
    nothing was trained, so the 10,000 predictions would serve no one). `unseen`: QMNIST's digits beyond MNIST
    (their images' .npy and their labels), measured the same way."""
    scratch = (jobdir / "eval").resolve()
    scratch.mkdir(parents=True)
    local_model = scratch / model_file.name  # the fresh sandbox gets a copy; the warm evaluator a read-only descriptor
    images = scratch / TEST_IMAGES  # images only: the labels never enter the sandbox
    job = {"model_file": str(local_model), "images_file": str(images), "out_dir": str(scratch),
           "static_batch": static_batch, "predict": labels is not None}
    if preprocess.kind == "transforms":  # torchvision steps the clean process builds again (grader.data.transforms)
        job["steps"] = [step.model_dump() for step in preprocess.steps]
    else:
        job.update(scale=float(preprocess.scale), shift=float(preprocess.shift))
    binds = [(staged / TEST_IMAGES, images)]
    if unseen is not None and labels is not None:
        job["unseen_images_file"] = str(scratch / UNSEEN_IMAGES)
        binds.append((unseen[0], scratch / UNSEEN_IMAGES))
    raw = (_warm(job, model_file, staged, unseen if labels is not None else None, limits)
           if warm and sandbox and warm_evaluator.enabled() and not _uses_gpu(gpu) else None)
    if raw is None:
        shutil.copyfile(model_file, local_model)
        raw = _cold(job, scratch, binds, limits, sandbox=sandbox, gpu=gpu)
    record, predictions, unseen_predictions = raw.record, raw.predictions, raw.unseen_predictions
    if record is None:
        return Evaluation(EvalFacts(path=path), None, None, f"the evaluation process did not finish: {raw.tail}")
    if "error" in record:
        return Evaluation(EvalFacts(path=path), None, None, f"the exported model could not be evaluated: {record['error']}")
    try:  # written where the model ran: read like any untrusted bytes
        model = ModelFacts.model_validate(record["model"]) if record.get("model") else None
    except (ValueError, TypeError) as exc:
        return Evaluation(EvalFacts(path=path), None, None, f"the evaluation's result could not be read: {exc}"[:1500])
    lookup = lookup_message(model)
    if labels is None:
        return Evaluation(EvalFacts(), model, record.get("device"), None, record.get("arch_error"), lookup)
    if predictions is None:
        return Evaluation(EvalFacts(path=path), None, record.get("device"), "the evaluation gave no predictions")
    if predictions.shape != labels.shape:
        return Evaluation(EvalFacts(path=path), None, record.get("device"),
                          f"the model gave {len(predictions)} predictions for {len(labels)} test images")
    measured = metrics(predictions, labels, path)
    if unseen is not None:
        on_unseen = unseen_predictions if unseen_predictions is not None else np.zeros(0)
        if on_unseen.shape != unseen[1].shape:
            return Evaluation(EvalFacts(path=path), None, record.get("device"), f"the model gave {len(on_unseen)} "
                              f"predictions for {len(unseen[1])} unseen digits")
        measured = measured.model_copy(update={"unseen_accuracy": round(float((on_unseen == unseen[1]).mean() * 100), 4)})
    if lookup:  # what a lookup scores is what it memorised: shown to the instructor, never credited
        return Evaluation(EvalFacts(path=path), model, record.get("device"), None, record.get("arch_error"),
                          lookup_message(model, measured.accuracy))
    return Evaluation(measured, model, record.get("device"), None, record.get("arch_error"))


@dataclass(frozen=True)
class _Raw:
    """What an evaluation process left, however it ran: its record (None: it did not finish), its predictions."""

    record: Optional[dict]
    predictions: Optional[np.ndarray] = None
    unseen_predictions: Optional[np.ndarray] = None
    tail: str = ""


def _uses_gpu(gpu: Optional[bool]) -> bool:
    """Whether the evaluation must run on a GPU: only when the rubric requires one (`gpu: required`). The warm
    evaluator is for the CPU (its zygote never touches CUDA, which a forked child could not use), and predicting
    10,000 digits with a course-sized net on the CPU costs less than starting CUDA in a fresh sandbox; so a GPU
    that is merely wanted trains the notebook, and the measuring stays warm on the CPU."""
    return gpu is True


def _warm(job: dict, model_file: Path, staged: Path, unseen: Optional[tuple[Path, np.ndarray]],
          limits: RunLimits) -> Optional[_Raw]:
    """Measured by a child of the class's zygote; None when the zygote cannot be had (then a fresh sandbox does it)."""
    try:
        evaluator = warm_evaluator.shared(staged / TEST_IMAGES, unseen[0] if unseen is not None else None, limits)
        result = evaluator.evaluate(job, model_file, limits=limits)
    except (RuntimeError, OSError) as exc:
        log.warning("the warm evaluator is not available (%s): measuring in a fresh sandbox", exc)
        return None
    if not result.started:  # the zygote, not the submission: measure it the cold way
        log.warning("%s: measuring in a fresh sandbox", result.problem)
        return None
    if result.header is None or "error" in result.header:
        reason = ("it ran past the evaluation limit" if result.timed_out else
                  "it ran out of memory" if result.memory_exceeded else result.problem or "")
        if result.header is not None:
            return _Raw({"error": str(result.header["error"])[:2000]})
        return _Raw(None, tail=(f"{reason}. " if reason else "") + result.log[-1500:])
    if not isinstance(result.header.get("record"), dict):
        return _Raw(None, tail="the evaluation's result could not be read. " + result.log[-1500:])
    arrays = result.arrays + [None, None]
    return _Raw(result.header["record"], arrays[0], arrays[1] if job.get("unseen_images_file") else None)


def _cold(job: dict, scratch: Path, binds: list, limits: RunLimits, *, sandbox: bool, gpu: Optional[bool]) -> _Raw:
    """Measured by a fresh process in a fresh sandbox, which imports torch itself."""
    (scratch / "job.json").write_text(json.dumps(job))
    spec = SandboxSpec.for_run(limits, scratch=scratch, wall_seconds=limits.eval_seconds,
                               ro_binds=tuple(binds), max_output_bytes=1 << 20, gpu=gpu,
                               env={"PYTHONDONTWRITEBYTECODE": "1"})
    result = run_sandboxed([sys.executable, "-P", "-m", "grader.evaluate.clean", str(scratch / "job.json")], spec,
                           sandbox=sandbox)
    try:
        record = json.loads((scratch / "eval.json").read_text())
    except (OSError, ValueError):
        return _Raw(None, tail=(result.stderr or result.stdout)[-1500:])
    files = [scratch / "predictions.npy", scratch / "unseen_predictions.npy"]
    arrays = [np.load(f) if f.exists() else None for f in files]
    return _Raw(record, arrays[0], arrays[1])


def lookup_message(model: Optional[ModelFacts], scored: Optional[float] = None) -> Optional[str]:
    """What the exported graph does that a CNN does not (None when nothing); `scored`: the accuracy it is denied."""
    found = model.ops.unexpected if model is not None else None
    if not found:
        return None
    shown = "; ".join(found[:4]) + (f"; and {len(found) - 4} more" if len(found) > 4 else "")
    carried = model.stored.flagged or []
    stored = (f". Besides its trainable parameters it stores {model.stored.carried:,} numbers: "
              + ", ".join(carried[:3]) + (f" and {len(carried) - 3} more" if len(carried) > 3 else "")) if carried else ""
    denied = f". It scored {scored:.2f}% on the test images, which is not credited" if scored is not None else ""
    return (f"the exported model looks answers up instead of computing them: {shown}{stored}{denied}. "
            "A CNN needs none of these: compute the ten scores from the image with convolutions, pooling and linear layers, and keep "
            "no copy of test images or labels in the model")
