"""The facts contract: what every stage may say about a submission.

Each stage fills its own section (a typed record); the rubric reads facts by
dotted name (`model.params.trainable`) and never looks at code. In JSON the
dotted names nest. Names here are a public contract with rubrics and LMS
integrations: extend, never rename.

A field left as None means "not measured" (the stage did not run, or could not
measure it); scoring treats that as zero with the verdict's reason.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import cache
from typing import Annotated, Any, ClassVar, Literal, Optional, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field
from pydantic.fields import FieldInfo

from grader.epochs_check import check_epochs
from grader.fact_spec import EVALUATED, EVERY_DEPTH, FULL_RUN, MEASURED, RUN, Fact, FactSpec, Kind, Unit, VerdictKind

# Numbers that are not plain counts, declared once: a field of one of these types reads and shows in its unit.
Percent = Annotated[Optional[float], Fact(unit="percent")]  # 0..100
Points = Annotated[Optional[float], Fact(unit="points")]  # percentage points between two percents
Share = Annotated[Optional[float], Fact(unit="share")]  # 0..1


class _Section(BaseModel):
    """A section of the facts; `declared` is what its facts are (unit, stage, depths, provenance) unless a field's own
    `Fact` says otherwise. A section without one (CellErrorFacts, used in two places) takes its parent field's."""

    model_config = ConfigDict(extra="forbid")
    declared: ClassVar[Fact] = Fact()


class CellErrorFacts(_Section):
    """The error a code cell raised, as the student would read it in Jupyter: in the grader's run (`verdict.error`,
    the cell the verdict is about) or in the notebook's saved outputs (`notebook.saved_error`)."""

    cell: Optional[int] = Field(None, description="the code cell that raised it (code cells counted from 1)")
    type: Optional[str] = Field(None, description="the exception's name: `IndexError`")
    message: Optional[str] = Field(None, description="its message, cut at 600 characters")
    traceback: Optional[list[str]] = Field(None, description="the lines of the student's own frames (the notebook's "
                                                             "cells, the hand-in's modules; not the libraries' or the "
                                                             "grader's), innermost last, at most the last 24")
    hint: Optional[str] = Field(None, description="what to change, for an error in the table of the course's common "
                                                  "ones (grader.execute.hints): `loss.data[0]` -> `loss.item()`")


class NotebookFacts(_Section):
    declared = Fact(stage="static", judged=EVERY_DEPTH, provenance="grader")

    code_cells: Optional[int] = None
    markdown_cells: Optional[int] = None
    comment_coverage: Share = Field(None, description="share of code cells with a comment, 0..1")
    uncommented_cells: Optional[list[int]] = Field(None, description="code cells without a comment, numbered as a "
                                                   "student counts them: code cells only, from 1")
    saved_error_cells: Annotated[Optional[list[int]], Fact(provenance="notebook")] = Field(
        None, description="code cells (from 1) whose saved outputs show an error: the run that produced them failed "
                          "there")
    saved_error: Annotated[CellErrorFacts, Fact(provenance="notebook")] = Field(
        CellErrorFacts(), description="the error the first of `saved_error_cells` shows in its saved outputs")
    shell_lines: Optional[list[str]] = None
    magic_lines: Optional[list[str]] = None
    colab_calls: Optional[list[str]] = None
    imports: Optional[list[str]] = None


class ClaimsFacts(_Section):
    """What the notebook printed, kept to compare with what was measured: in its saved outputs (`params`,
    `accuracy`, ...) and, in execute mode, while the grader ran it (`run_*`)."""

    declared = Fact(stage="static", judged=EVERY_DEPTH, provenance="notebook")

    params: Optional[int] = None
    params_kind: Optional[Literal["trainable", "total"]] = Field(
        None, description="what `params` counts: trainable parameters (`Trainable params:`, a sum that keeps "
                          "`requires_grad`) or all of them (`Total params:`)")
    accuracy: Percent = Field(None, description="best test accuracy in the saved outputs, in percent")
    last_accuracy: Percent = None
    epochs: Optional[int] = None
    accuracy_gap: Annotated[Points, Fact(stage="derived", judged=EVALUATED)] = Field(
        None, description="the larger of (printed - measured accuracy) over the saved outputs and the graded run's "
                          "output, percent points")
    run_accuracy: Annotated[Percent, Fact(stage="run", judged=FULL_RUN)] = Field(
        None, description="best test accuracy the notebook printed while the grader ran it, in percent")
    run_accuracy_gap: Annotated[Points, Fact(stage="derived", judged=FULL_RUN)] = Field(
        None, description="claims.run_accuracy - eval.accuracy, percent points")
    params_gap: Annotated[Optional[int], Fact(stage="derived", judged=MEASURED)] = Field(
        None, description="claims.params less the count of the same kind measured in the model graded "
                          "(model.params.trainable or model.params.total, by claims.params_kind); 0: they agree")


class ParamFacts(_Section):
    trainable: Optional[int] = None
    total: Optional[int] = None


class LayerCounts(_Section):
    linear: Optional[int] = None
    conv: Optional[int] = None
    conv1x1: Optional[int] = None
    maxpool: Optional[int] = None
    batchnorm: Optional[int] = None
    dropout: Optional[int] = None


class RfFacts(_Section):
    final: Annotated[Optional[int], Fact(unit="pixels")] = Field(
        None, description="receptive field, in input pixels, at the last spatial layer: the one that feeds global "
                          "pooling, flatten or the first linear layer")
    covers_input: Optional[bool] = None
    layer: Optional[int] = Field(None, description="the layer-table row (`index`) that rf.final belongs to; rows after "
                                                   "it (global pooling and on) see the whole map")


class StoredFacts(_Section):
    """Every number the exported model stores, by kind (read from the exported program, not the student's classes).
    Counted numbers are float32-equivalents: a number wider than 4 bytes (float64, int64) counts its bytes / 4."""

    trainable: Optional[int] = Field(None, description="numbers in parameters that train (requires_grad)")
    frozen: Optional[int] = Field(None, description="numbers in parameters with requires_grad=False")
    buffers: Optional[int] = Field(None, description="numbers in buffers, batch-norm running statistics excepted")
    bn_stats: Optional[int] = Field(None, description="numbers in batch-norm running statistics (mean, variance, "
                                                      "counter), not counted: buffers the graph uses only as the "
                                                      "running statistics of a batch norm on the image, one per "
                                                      "channel of a layer with its own weight of that size")
    constants: Optional[int] = Field(None, description="numbers in tensors that forward captured from outside the "
                                                       "module, lifted into the exported program as constants, and "
                                                       "the literal numbers written into the graph (`literals`)")
    literals: Optional[int] = Field(None, description="literal numbers written into the graph as data (x * 0.123, "
                                                      "a select's index; not a layer's kernel size or eps), one "
                                                      "each, counted within `constants`")
    learned: Optional[int] = Field(None, description="every stored number but the batch-norm running statistics: "
                                                     "trainable + frozen + buffers + constants")
    carried: Optional[int] = Field(None, description="numbers outside trainable parameters and batch-norm "
                                                     "statistics: frozen + buffers + constants")
    bn_batches: Annotated[Optional[int], Fact(provenance="student")] = Field(
        None, description="the largest `num_batches_tracked` of the batch-norm layers: the batches they saw in "
                          "training mode (the student's process set it; the grader reads it from the model file)")
    flagged: Optional[list[str]] = Field(None, description="when `carried` is over a small allowance (1,000), each "
                                                           "such tensor with its name and size (and dtype when not "
                                                           "float32), and the literal numbers, largest first; [] "
                                                           "when within it")


class OpsFacts(_Section):
    """Operators read from the exported graph, against the ones a course CNN is made of."""

    unexpected: Optional[list[str]] = Field(
        None, description="what a CNN does not need, one line each with what it is, its node and operator and what "
                          "it reads: an operator outside the allowlist (conv, linear, pooling, normalisation, "
                          "activations, dropout, reshapes, static slices, residual arithmetic, mean, a softmax over "
                          "the ten classes), an allowed one used otherwise (weights computed from the image, a "
                          "softmax over other than ten entries), an integer or boolean value computed from the "
                          "image, values that mix the images of a batch, a change to stored state that the next "
                          "batch would read; [] when none")


class ModelFacts(_Section):
    declared = Fact(stage="model", judged=MEASURED, provenance="grader")

    params: ParamFacts = ParamFacts()
    buffers: Optional[int] = None
    layers: LayerCounts = LayerCounts()
    activations: Optional[list[str]] = None
    gap: Optional[bool] = Field(None, description="an average over the whole feature map feeds the output")
    transitions: Optional[int] = Field(None, description="channel-reducing 1x1 convolutions next to a max-pool")
    layers_after_last_maxpool: Optional[int] = None
    rf: RfFacts = RfFacts()
    input_shape: Optional[list[int]] = None
    output_shape: Optional[list[int]] = None
    branches: Optional[bool] = None
    table: Optional[list[dict[str, Any]]] = Field(None, description="the layer table (sizes, RF, params per layer)")
    stored: StoredFacts = StoredFacts()
    ops: OpsFacts = OpsFacts()
    transition_layers: Optional[list[int]] = Field(None, description="the layer-table row (`model.table` index) of "
                                                   "each 1x1 counted in `model.transitions`")
    avgpool_on_1x1: Optional[list[int]] = Field(None, description="the layer-table row (`model.table` index) of "
                                                "each average pool (global or not) whose input map is already "
                                                "1x1: it averages nothing, so it is not counted in `model.gap`")


_EDITABLE = "counted by the harness in the notebook's own process, where the student's code could change it"


_CHECKED = Fact(stage="derived", provenance="grader")  # the epoch count's cross-check, computed on the host


class TrainFacts(_Section):
    """What the run trained. The counts come from the student's process (see each description); the epoch
    count is set against counters kept elsewhere (grader.epochs_check), and `epochs_checked` is what a rubric's
    epoch budget reads."""

    declared = Fact(stage="run", judged=FULL_RUN, provenance="student")

    epochs: Optional[float] = Field(None, description="samples DataLoaders handed out while gradients were on, over "
                                                      f"the training set's size; {_EDITABLE}")
    optimizer_steps: Optional[int] = Field(None, description=f"optimizer steps; {_EDITABLE}")
    samples_seen: Optional[int] = Field(None, description=f"training samples; {_EDITABLE}")
    batches_per_epoch: Optional[int] = Field(None, description="batches in one pass of the training DataLoader "
                                                               f"(its len()); {_EDITABLE}")
    no_grad_batches: Optional[int] = Field(None, description="batches DataLoaders handed out with gradients off "
                                                             f"(evaluation loops); {_EDITABLE}")
    optimizer_state_steps: Optional[int] = Field(
        None, description="the largest `step` torch's optimizers keep in their own state (Adam, AdamW, RMSprop, "
                          "Adagrad; None for SGD, which keeps none), or a fitted Keras model's optimizer its "
                          "`iterations`, read by the harness at the end of the run: in the student's process too, "
                          "but apart from the harness's counters")
    epochs_at_least: Annotated[Optional[float], _CHECKED] = Field(
        None, description="epochs the model's batch-norm counters (`model.stored.bn_batches`, read by the grader from "
                          "the exported model, less `no_grad_batches`) or the optimizers' own step counts show at "
                          "least, per `batches_per_epoch`; None: neither is available")
    counter_disagrees: Annotated[Optional[bool], _CHECKED] = Field(
        None, description="true: `epochs_at_least` exceeds `epochs` beyond the tolerance (10% + half an epoch): the "
                          "count was changed or missed training")
    epochs_check: Annotated[Optional[str], _CHECKED] = Field(
        None, description="the epoch count set against the cross-checks, naming both figures and where they come "
                          "from")
    epochs_checked: Annotated[Optional[float], _CHECKED] = Field(
        None, description="`epochs` when a cross-check backs it; None when they disagree or there is none "
                          "(`epochs_check` says which)")
    seconds: Annotated[Optional[float], Fact(unit="seconds")] = None
    device: Optional[str] = None
    model_variable: Optional[str] = Field(None, description="the notebook variable (or list / dict item, "
                                          "`models['ln']`) the graded model was taken from; a module no variable "
                                          "holds is named by where it was trained: \"the Net trained inside "
                                          "`train_model()`\"")
    model_reason: Optional[str] = Field(None, description="why that one: the rubric names it, or the last optimizer "
                                                          "step (torch) / fit (Keras) updated its parameters, or "
                                                          "(nothing stepped: the training cells failed) the last "
                                                          "optimizer built holds them, ...")
    trained_models: Optional[list[str]] = Field(None, description="every model an optimizer step or fit updated, "
                                                "named as `model_variable` is, the most recent first; more than "
                                                "one: the notebook trained several models")
    compat_shims: Optional[list[str]] = Field(None, description="compat shims (the rubric's environment: compat:) the "
                                                                "notebook's code went through, e.g. `torch-1.x: "
                                                                "DataLoader iterator .next()`")
    pip_missing: Optional[list[str]] = Field(None, description="packages a `pip install` cell asked for that the "
                                                               "grading environment lacks (the sandbox installs "
                                                               "nothing)")


class EvalFacts(_Section):
    declared = Fact(stage="evaluation", judged=EVALUATED, provenance="grader")

    accuracy: Percent = Field(None, description="percent, measured by the grader on the 10,000 test images")
    per_class: Annotated[Optional[list[float]], Fact(unit="percent")] = None
    confusion: Optional[list[list[int]]] = None
    misclassified: Optional[list[int]] = None
    misclassified_as: Optional[list[int]] = Field(None, description="the digit predicted for each misclassified "
                                                                    "image, same order")
    path: Optional[Literal["export", "keras"]] = None  # keras: a .keras file, safe_mode
    unseen_accuracy: Percent = Field(None, description="percent, measured on QMNIST's 50,000 test digits "
                                             "beyond MNIST's, which no notebook can have seen (only when asked "
                                             "for: the rubric's unseen: true or --unseen)")
    unseen_gap: Annotated[Points, Fact(stage="derived")] = Field(
        None, description="eval.accuracy - eval.unseen_accuracy, percent points; over 1 point is flagged: it fits "
                          "MNIST's test set, not digits")


_HOW_IT_RAN = Fact(judged=RUN)  # how the run ended: evaluate mode's saved outputs do not show it


class VerdictFacts(_Section):
    # How grading ended (grader.verdict). Evaluate mode reads the failed cells and their errors from the saved
    # outputs; what kind of ending, its cell and message only a run shows.
    declared = Fact(stage="verdict", judged=MEASURED, provenance="grader")

    kind: Annotated[Optional[VerdictKind], _HOW_IT_RAN] = None
    message: Annotated[Optional[str], _HOW_IT_RAN] = None
    cell: Annotated[Optional[int], _HOW_IT_RAN] = Field(
        None, description="the code cell the verdict is about (code cells counted from 1)")
    failed_cells: Optional[list[int]] = Field(
        None, description="code cells (counted from 1) that raised an error while the rest of the notebook went on "
                          "(from the run; in evaluate mode, from the saved outputs)")
    output_tail: Optional[str] = None
    error: CellErrorFacts = CellErrorFacts()

    @property
    def graded(self) -> bool:
        """False when the grader failed (`grader_failed`): nothing about the submission was established."""
        return self.kind != "grader_failed"


class QuizFacts(_Section):
    declared = Fact(stage="quiz", judged=EVERY_DEPTH, provenance="grader")

    answers: Annotated[Optional[dict[str, Any]], Fact(stage="static", provenance="notebook")] = Field(
        None, description="the answers in the notebook's cell tagged quiz, as written (None: no such cell, or "
                          "`error` says why it was not read)")
    error: Annotated[Optional[str], Fact(stage="static", provenance="grader")] = Field(
        None, description="why the cell tagged quiz could not be read: where, and what to write instead; None: it "
                          "was read, or there is no such cell")
    score: Optional[float] = None
    max_score: Optional[float] = None
    questions: Optional[list[dict[str, Any]]] = None


class GradingFacts(_Section):
    """How this submission was graded: what the other facts could and could not establish."""

    declared = Fact(stage="grading", judged=EVERY_DEPTH, provenance="grader")

    mode: Optional[Literal["static", "evaluate", "execute"]] = Field(
        None, description="static: only the file was read; evaluate: the exported model handed in was measured, "
                          "the notebook was not run; execute: the notebook ran in the sandbox, then its model was "
                          "measured")
    dry_run: Optional[bool] = Field(None, description="execute mode with data loaders that yield two batches of "
                                                      "fixed images on their first full pass and nothing after it: "
                                                      "the training and test code ran once, and the model, two "
                                                      "batches from trained, was not measured on the test set")
    isolation: Optional[str] = Field(None, description="execute mode: how the notebook's sandbox was held, as the "
                                                      "grader set it up: cgroup (v1 / v2, and where) or rlimits and "
                                                      "why, the CPU quota, the disk quota (a file system of its own "
                                                      "or only watched), and the host uid its processes ran as")


class HandedFile(_Section):
    """One file of the hand-in staged beside the notebook."""

    path: str = Field("", description="the file's path relative to the hand-in's root (POSIX separators)")
    bytes: int = Field(0, description="its size in bytes")
    sha256: str = Field("", description="the SHA-256 of its content")


class LeftOutFile(_Section):
    """A file of the hand-in that was not staged, and why."""

    path: str = Field("", description="the file's path relative to the hand-in's root")
    reason: str = Field("", description="why it was left out (a data file, a checkpoint, over the size or count limit)")


_STAGED = Fact(provenance="grader")  # what intake found staging the hand-in (or cloning its link)


class SubmissionFacts(_Section):
    """What the LMS said about the hand-in, not the work: filled at intake, never measured from the notebook."""

    declared = Fact(stage="intake", judged=EVERY_DEPTH, provenance="lms")

    late: Optional[bool] = Field(None, description="handed in after the deadline, as the LMS marked it (Canvas "
                                                   "LATE_ file names, a roster's status); None: the LMS did not say")
    link: Optional[str] = Field(None, description="the GitHub link the student handed in instead of a file")
    commit: Annotated[Optional[str], _STAGED] = Field(None, description="the commit a linked repository was graded at")
    commit_date: Annotated[Optional[str], _STAGED] = Field(None, description="that commit's committer date (ISO 8601)")
    notebook_path: Annotated[Optional[str], _STAGED] = Field(None, description="the notebook's path inside a linked "
                                                                               "repository")
    files: Annotated[Optional[list[HandedFile]], _STAGED] = Field(
        None, description="the hand-in's files staged with the notebook (the notebook first), with their hashes; "
                          "None: the notebook was graded alone")
    left_out: Annotated[Optional[list[LeftOutFile]], _STAGED] = Field(
        None, description="the hand-in's files not staged, and why")


class Facts(_Section):
    grading: GradingFacts = GradingFacts()
    notebook: NotebookFacts = NotebookFacts()
    claims: ClaimsFacts = ClaimsFacts()
    model: ModelFacts = ModelFacts()
    train: TrainFacts = TrainFacts()
    eval: EvalFacts = EvalFacts()
    verdict: VerdictFacts = VerdictFacts()
    quiz: QuizFacts = QuizFacts()
    submission: SubmissionFacts = SubmissionFacts()

    def get(self, dotted: str) -> Any:
        """The value of a dotted fact name; None when not measured."""
        node: Any = self
        for part in dotted.split("."):
            node = getattr(node, part)
        return node

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def _leaf_names(model: type[BaseModel], prefix: str = "") -> Iterator[str]:
    for name, field in model.model_fields.items():
        kind = field.annotation
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            yield from _leaf_names(kind, f"{prefix}{name}.")
        else:
            yield f"{prefix}{name}"


def known_facts() -> list[str]:
    """Every dotted fact name some stage produces: what a rubric item may read."""
    return sorted(_leaf_names(Facts))


def fact_field(name: str) -> FieldInfo:
    """The declaration of a dotted fact in the facts record (its type, description and `Fact`)."""
    model: Any = Facts
    for part in name.split("."):
        field = model.model_fields[part]
        model = field.annotation
    return field


def fact_type(name: str) -> Any:
    """The declared type of a dotted fact (Optional removed)."""
    node = fact_field(name).annotation
    if get_origin(node) is Union:
        node = next(arg for arg in get_args(node) if arg is not type(None))
    return node


def _kind(kind: Any) -> tuple[Kind, tuple[str, ...]]:
    if kind is bool:
        return "bool", ()
    if kind in (int, float):
        return "number", ()
    if kind is str:
        return "text", ()
    if get_origin(kind) is Literal:
        return "text", get_args(kind)
    if get_origin(kind) is list:
        return "list", ()
    return "record", ()


def _declared(field: FieldInfo, base: Fact) -> Fact:
    """`base` with what the field's own `Fact`s say (a `Percent` and an `Annotated` around it: both, the outer last)."""
    for declared in field.metadata:
        if isinstance(declared, Fact):
            base = declared.over(base)
    return base


def _numbers(kind: Any) -> Any:
    """The type of the numbers a fact holds (a list's innermost items), or None."""
    while get_origin(kind) is list:
        kind = get_args(kind)[0]
    return kind if kind in (int, float) else None


@cache
def spec(name: str) -> FactSpec:
    """What is declared about a dotted fact: its kind, unit, stage, the depths that judge it, its provenance. Each
    section's `declared` and each field's `Fact` on the way down say it; the nearest says last."""
    model: Any = Facts
    declared = Fact()
    for part in name.split("."):
        declared = model.declared.over(declared)
        field = model.model_fields[part]
        declared = _declared(field, declared)
        model = field.annotation
    kind, choices = _kind(fact_type(name))
    numbers = _numbers(fact_type(name))
    plain: dict[Any, Unit] = {int: "count", float: "number"}
    unit = declared.unit or (plain.get(numbers) if numbers else None)
    if declared.stage is None or declared.judged is None or declared.provenance is None:
        raise TypeError(f"fact {name} is not fully declared ({declared}): give its section a `declared`")
    return FactSpec(name=name, description=fact_field(name).description or "", kind=kind, choices=choices,
                    unit=unit, stage=declared.stage, judged=declared.judged, provenance=declared.provenance)


def with_derived(facts: Facts) -> Facts:
    """The facts computed from other facts, computed here once: the accuracy and parameter gaps of `claims`,
    `eval.unseen_gap`, the epoch count's cross-check (`train.epochs_checked` and the facts beside it)."""
    claims, measured = facts.claims, facts.eval.accuracy

    def gap(printed: Optional[float]) -> Optional[float]:
        return None if printed is None or measured is None else round(printed - measured, 4)

    saved, run = gap(claims.accuracy), gap(claims.run_accuracy)
    worst = max((g for g in (saved, run) if g is not None), default=None)
    unseen = facts.eval.unseen_accuracy
    unseen_gap = None if unseen is None or measured is None else round(measured - unseen, 4)
    counted = facts.model.params.trainable if claims.params_kind == "trainable" else facts.model.params.total
    params_gap = None if claims.params is None or counted is None else claims.params - counted
    return facts.model_copy(update={"claims": claims.model_copy(update={"accuracy_gap": worst,
                                                                       "run_accuracy_gap": run,
                                                                       "params_gap": params_gap}),
                                    "eval": facts.eval.model_copy(update={"unseen_gap": unseen_gap}),
                                    "train": _checked_epochs(facts)})


def _checked_epochs(facts: Facts) -> TrainFacts:
    """`train` with its epoch count set against the model's and the optimizers' own counters (when it ran)."""
    train = facts.train
    if train.optimizer_steps is None:  # no counters came back (not run, a dry run, a run that failed)
        return train
    check = check_epochs(counted=train.epochs, batches_per_epoch=train.batches_per_epoch,
                         bn_batches=facts.model.stored.bn_batches, no_grad_batches=train.no_grad_batches,
                         optimizer_state_steps=train.optimizer_state_steps)
    return train.model_copy(update=dict(epochs_at_least=check.at_least, counter_disagrees=check.disagrees,
                                        epochs_check=check.message, epochs_checked=check.checked))
