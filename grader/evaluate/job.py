"""Host side of the clean evaluation: copy the exported model into a fresh scratch, predict in a new sandbox,
score the predictions against labels the sandbox never saw. The model is copied, and the evaluation's files read
back, through grader.sandbox.readback only."""

from __future__ import annotations

import json
import logging
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Optional

import numpy as np

from grader.data.preprocess import Preprocess
from grader.data.staging import TEST_IMAGES, UNSEEN_IMAGES
from grader.evaluate import warm as warm_evaluator
from grader.evaluate.eval_jobs import EvalJob
from grader.evaluate.metrics import metrics
from grader.facts import EvalFacts, ModelFacts
from grader.sandbox import SandboxSpec, run_sandboxed
from grader.sandbox.failure import HostFailure, sandbox_failure
from grader.sandbox.readback import Folder, Kind, Missing, ReadbackError
from grader.settings import Options, RunLimits

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Evaluation:
    eval: EvalFacts
    model: Optional[ModelFacts]
    device: Optional[str]
    error: Optional[str]  # why accuracy could not be measured
    arch_error: Optional[str] = None
    lookup: Optional[str] = None  # why the accuracy is not credited: the graph looks answers up (model.ops.unexpected)
    host_failure: Optional[HostFailure] = None  # the evaluation never started: the machine's fault, not the model's


def evaluate_model(model: Folder, name: str, path: str, options: Options, *, preprocess: Preprocess, staged: Path,
                   labels: Optional[np.ndarray], jobdir: Path, static_batch: Optional[int] = None,
                   unseen: Optional[tuple[Path, np.ndarray]] = None) -> Evaluation:
    """Measure the exported model `name` in the folder `model` (what the sandbox left, or the folder of a model
    handed in) under `options`' limits: in a child of the warm evaluator (`options.warm`, on the CPU, unless
    GRADER_WARM_EVAL=0), else in a fresh sandbox. Either way it measures a copy of ours, made through
    grader.sandbox.readback. Without `labels` it only reads the structure (a dry run: nothing was trained, so the
    10,000 predictions would serve no one). `unseen`: QMNIST's digits beyond MNIST (their images' .npy and their
    labels), measured the same way."""
    scratch, local_model, unread = copy_model(model, name, jobdir)
    if unread is not None:
        return Evaluation(EvalFacts(path=path), None, None, unread)
    images = scratch / TEST_IMAGES  # images only: the labels never enter the sandbox
    # torchvision steps the clean process builds again (grader.data.transforms), or x -> scale * x/255 + shift
    inputs: dict[str, Any]
    if preprocess.kind == "transforms":
        assert preprocess.steps is not None, "Preprocess reads transforms without steps as `other`"
        inputs = {"steps": [step.model_dump() for step in preprocess.steps]}
    else:
        assert preprocess.scale is not None and preprocess.shift is not None, "an affine preprocess has its map"
        inputs = {"scale": float(preprocess.scale), "shift": float(preprocess.shift)}
    binds = [(staged / TEST_IMAGES, images)]
    unseen = unseen if labels is not None else None
    if unseen is not None:
        binds.append((unseen[0], scratch / UNSEEN_IMAGES))
    job = EvalJob(model_file=str(local_model), images_file=str(images), out_dir=str(scratch),
                  static_batch=static_batch, predict=labels is not None,
                  unseen_images_file=str(scratch / UNSEEN_IMAGES) if unseen is not None else None, **inputs)
    raw = _warm(job, local_model, staged, unseen, options.limits) if _warm_here(options) else None
    if raw is None:
        raw = _cold(job, scratch, binds, options)
    record, predictions, unseen_predictions = raw.record, raw.predictions, raw.unseen_predictions
    if raw.problem is not None:
        return Evaluation(EvalFacts(path=path), None, None, raw.problem)
    if record is None:
        return Evaluation(EvalFacts(path=path), None, None, f"the evaluation process did not finish: {raw.tail}",
                          host_failure=raw.host_failure)
    if "error" in record:
        return Evaluation(EvalFacts(path=path), None, None,
                          f"the exported model could not be evaluated: {record['error']}")
    try:  # written where the model ran: read like any untrusted bytes
        model_facts = ModelFacts.model_validate(record["model"]) if record.get("model") else None
    except (ValueError, TypeError) as exc:
        return Evaluation(EvalFacts(path=path), None, None, f"the evaluation's result could not be read: {exc}"[:1500])
    lookup = lookup_message(model_facts)
    if labels is None:
        return Evaluation(EvalFacts(), model_facts, record.get("device"), None, record.get("arch_error"), lookup)
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
        unseen_accuracy = round(float((on_unseen == unseen[1]).mean() * 100), 4)
        measured = measured.model_copy(update={"unseen_accuracy": unseen_accuracy})
    if lookup:  # what a lookup scores is what it memorised: shown to the instructor, never credited
        return Evaluation(EvalFacts(path=path), model_facts, record.get("device"), None, record.get("arch_error"),
                          lookup_message(model_facts, measured.accuracy))
    return Evaluation(measured, model_facts, record.get("device"), None, record.get("arch_error"))


@dataclass(frozen=True)
class Raw:
    """What an evaluation process left, however it ran: its record (None: it did not finish), its predictions."""

    record: Optional[dict]
    predictions: Optional[np.ndarray] = None
    unseen_predictions: Optional[np.ndarray] = None
    tail: str = ""
    host_failure: Optional[HostFailure] = None
    problem: Optional[str] = None  # what it left could not be read (grader.sandbox.readback): why


def copy_model(model: Folder, name: str, jobdir: Path) -> tuple[Path, Path, Optional[str]]:
    """(the evaluation's scratch, our copy of the model in it, None), or why the model file was not read
    (a link, a FIFO, over the cap: grader.sandbox.readback) as the last item."""
    scratch = (jobdir / "eval").resolve()
    scratch.mkdir(parents=True)
    local_model = scratch / name
    try:
        model.copy(name, Kind.MODEL, local_model)
    except ReadbackError as err:
        return scratch, local_model, unreadable_model(err)
    return scratch, local_model, None


def unreadable_model(err: ReadbackError) -> str:
    return (f"the model file could not be read: {err}. The grader reads a model only as a regular file: leave the "
            "output folder it saves the model in alone, and hand a model in as a plain file")


def read_back(scratch: Path, tail: str) -> Raw:
    """What a clean evaluation in a fresh sandbox left in its scratch (eval.json, the predictions), read through
    grader.sandbox.readback: a process that loaded the model wrote them, so they are untrusted bytes."""
    try:
        with Folder(scratch, "the evaluation's folder") as folder:
            try:
                record = json.loads(folder.read("eval.json", Kind.RESULT))
            except Missing:
                return Raw(None, tail=tail)
            if not isinstance(record, dict):
                raise ValueError("eval.json is not a JSON object")
            arrays = [_labels(folder, name) for name in ("predictions.npy", "unseen_predictions.npy")]
    except (ReadbackError, ValueError, RecursionError) as exc:  # RecursionError: JSON nested past Python's stack
        return Raw(None, problem=f"the evaluation's result could not be read: {exc}"[:2000])
    return Raw(record, arrays[0], arrays[1])


def _labels(folder: Folder, name: str) -> Optional[np.ndarray]:
    try:
        return folder.labels(name)
    except Missing:
        return None


def _uses_gpu(gpu: Optional[bool]) -> bool:
    """Whether the evaluation must run on a GPU: only when the rubric requires one (`gpu: required`). The warm
    evaluator is for the CPU (its zygote never touches CUDA, which a forked child could not use), and predicting
    10,000 digits with a course-sized net on the CPU costs less than starting CUDA in a fresh sandbox; so a GPU
    that is merely wanted trains the notebook, and the measuring stays warm on the CPU."""
    return gpu is True


def _warm_here(options: Options) -> bool:
    return options.warm and options.sandbox and warm_evaluator.enabled() and not _uses_gpu(options.gpu)


def prestart_evaluator(staged: Path, options: Options, *, measure: bool,
                       unseen: Optional[tuple[Path, np.ndarray]]) -> None:
    """Start, in the background, the warm evaluator `evaluate_model` will use with the same arguments (`measure`:
    it will be given labels), so that its start overlaps the notebook's run; nothing where it would not be used."""
    if _warm_here(options):
        warm_evaluator.shared(staged / TEST_IMAGES, unseen[0] if unseen is not None and measure else None,
                              options.limits).prestart()


def _warm(job: EvalJob, model_file: Path, staged: Path, unseen: Optional[tuple[Path, np.ndarray]],
          limits: RunLimits) -> Optional[Raw]:
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
            return Raw({"error": str(result.header["error"])[:2000]})
        return Raw(None, tail=(f"{reason}. " if reason else "") + result.log[-1500:])
    if not isinstance(result.header.get("record"), dict):
        return Raw(None, tail="the evaluation's result could not be read. " + result.log[-1500:])
    arrays = result.arrays + [None, None]
    return Raw(result.header["record"], arrays[0], arrays[1] if job.unseen_images_file else None)


def _cold(job: EvalJob, scratch: Path, binds: list, options: Options) -> Raw:
    """Measured by a fresh process in a fresh sandbox, which imports torch itself."""
    (scratch / "job.json").write_text(job.model_dump_json())
    limits = options.limits
    spec = SandboxSpec.for_run(limits, scratch=scratch, wall_seconds=limits.eval_seconds,
                               ro_binds=tuple(binds), max_output_bytes=1 << 20, gpu=options.gpu,
                               env={"PYTHONDONTWRITEBYTECODE": "1"})
    result = run_sandboxed([sys.executable, "-P", "-m", "grader.evaluate.clean", str(scratch / "job.json")], spec,
                           sandbox=options.sandbox)
    raw = read_back(scratch, (result.stderr or result.stdout)[-1500:])
    if raw.record is None and raw.problem is None:  # nothing written: the machine's fault when bubblewrap said so
        return replace(raw, host_failure=sandbox_failure(result, record_written=False))
    return raw


def lookup_message(model: Optional[ModelFacts], scored: Optional[float] = None) -> Optional[str]:
    """What the exported graph does that a CNN does not (None when nothing); `scored`: the accuracy it is denied."""
    if model is None or not model.ops.unexpected:
        return None
    found = model.ops.unexpected
    shown = "; ".join(found[:4]) + (f"; and {len(found) - 4} more" if len(found) > 4 else "")
    carried = model.stored.flagged or []
    more = f" and {len(carried) - 3} more" if len(carried) > 3 else ""
    stored = (f". Besides its trainable parameters it stores {model.stored.carried:,} numbers: "
              + ", ".join(carried[:3]) + more) if carried else ""
    denied = f". It scored {scored:.2f}% on the test images, which is not credited" if scored is not None else ""
    return (f"the exported model looks answers up instead of computing them: {shown}{stored}{denied}. "
            "A CNN needs none of these: compute the ten scores from the image with convolutions, pooling and linear "
            "layers, and keep no copy of test images or labels in the model")
