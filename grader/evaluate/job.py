"""Host side of the clean evaluation: copy the exported model into a fresh scratch, predict in a new sandbox,
score the predictions against labels the sandbox never saw."""

from __future__ import annotations

import json
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from grader.data.preprocess import Preprocess
from grader.data.staging import TEST_IMAGES, UNSEEN_IMAGES
from grader.evaluate.metrics import metrics
from grader.facts import EvalFacts, ModelFacts
from grader.sandbox import SandboxSpec, run_sandboxed
from grader.settings import RunLimits


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
                   unseen: Optional[tuple[Path, np.ndarray]] = None) -> Evaluation:
    """Measure an exported model in a fresh sandbox. Without `labels` it only reads the structure (a dry run:
    nothing was trained, so the 10,000 predictions would serve no one). `unseen`: QMNIST's digits beyond MNIST
    (their images' .npy and their labels), measured the same way."""
    scratch = (jobdir / "eval").resolve()
    scratch.mkdir(parents=True)
    local_model = scratch / model_file.name
    shutil.copyfile(model_file, local_model)
    images = scratch / TEST_IMAGES  # images only: the labels never enter the sandbox
    job = {"model_file": str(local_model), "path": path, "images_file": str(images), "out_dir": str(scratch),
           "static_batch": static_batch, "predict": labels is not None}
    if preprocess.kind == "transforms":  # torchvision steps the clean process builds again (grader.data.transforms)
        job["steps"] = [step.model_dump() for step in preprocess.steps]
    else:
        job.update(scale=float(preprocess.scale), shift=float(preprocess.shift))
    binds = [(staged / TEST_IMAGES, images)]
    if unseen is not None and labels is not None:
        job["unseen_images_file"] = str(scratch / UNSEEN_IMAGES)
        binds.append((unseen[0], scratch / UNSEEN_IMAGES))
    (scratch / "job.json").write_text(json.dumps(job))
    spec = SandboxSpec.for_run(limits, scratch=scratch, wall_seconds=limits.eval_seconds,
                               ro_binds=tuple(binds), max_output_bytes=1 << 20, gpu=gpu,
                               env={"PYTHONDONTWRITEBYTECODE": "1"})
    result = run_sandboxed([sys.executable, "-P", "-m", "grader.evaluate.clean", str(scratch / "job.json")], spec,
                           sandbox=sandbox)
    try:
        record = json.loads((scratch / "eval.json").read_text())
    except (OSError, ValueError):
        tail = (result.stderr or result.stdout)[-1500:]
        return Evaluation(EvalFacts(path=path), None, None, f"the evaluation process did not finish: {tail}")
    if "error" in record:
        return Evaluation(EvalFacts(path=path), None, None, f"the exported model could not be evaluated: {record['error']}")
    model = ModelFacts.model_validate(record["model"]) if record.get("model") else None
    lookup = lookup_message(model)
    if labels is None:
        return Evaluation(EvalFacts(), model, record.get("device"), None, record.get("arch_error"), lookup)
    predictions = np.load(scratch / "predictions.npy")
    if predictions.shape != labels.shape:
        return Evaluation(EvalFacts(path=path), None, record.get("device"),
                          f"the model gave {len(predictions)} predictions for {len(labels)} test images")
    measured = metrics(predictions, labels, path)
    if unseen is not None:
        on_unseen = np.load(scratch / "unseen_predictions.npy")
        if on_unseen.shape != unseen[1].shape:
            return Evaluation(EvalFacts(path=path), None, record.get("device"), f"the model gave {len(on_unseen)} "
                              f"predictions for {len(unseen[1])} unseen digits")
        measured = measured.model_copy(update={"unseen_accuracy": round(float((on_unseen == unseen[1]).mean() * 100), 4)})
    if lookup:  # what a lookup scores is what it memorised: shown to the instructor, never credited
        return Evaluation(EvalFacts(path=path), model, record.get("device"), None, record.get("arch_error"),
                          lookup_message(model, measured.accuracy))
    return Evaluation(measured, model, record.get("device"), None, record.get("arch_error"))


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
