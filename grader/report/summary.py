"""What a report says, decided once: the view every report format renders (pure).

The HTML and Markdown reports are two templates over the same `ReportView`, so
they cannot drift apart. Everything here is formatted text and numbers; the
templates only lay it out (and escape it: much of it is student-controlled).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Literal, Optional, Union

from grader.arch.stored_state import ALLOWANCE
from grader.fact_spec import VERDICTS
from grader.facts import CellErrorFacts, ClaimsFacts, Facts, spec
from grader.formatting import cells, num
from grader.report.audience import Audience, student_items, student_pass_rule
from grader.rubric.reasons import not_measured_reason
from grader.rubric.sheet import ItemResult, ScoreSheet

if TYPE_CHECKING:
    import numpy as np

# A digit for each test image, in order: the labels, or a model's predictions (a list, or the array they were read as).
Digits = Union[Sequence[int], "np.ndarray"]

State = Literal["good", "warn", "bad", "missing", "neutral"]

MISCLASSIFIED_SHOWN = 36
NO_SCORE = "—"  # where a score would be, when the grader failed and there is none

STATUS_LABELS = {"passed": "passed", "partial": "partial", "failed": "failed", "not_measured": "not measured",
                 "not_judged": "not judged at this depth"}
_STATUS_STATE: dict[str, State] = {"passed": "good", "partial": "warn", "failed": "bad", "not_measured": "bad",
                                   "not_judged": "missing"}
_STATE_RANK = {"bad": 0, "missing": 1, "warn": 2, "good": 3}


@dataclass(frozen=True)
class ErrorView:
    """The failing cell's error as Jupyter showed it, and what to change (all of it student-controlled text)."""

    cell: Optional[int]
    error: str  # "IndexError: invalid index of a 0-dim tensor. ..."
    traceback: str  # the student's own frames, one line each ("" when none were kept)
    hint: Optional[str]


@dataclass(frozen=True)
class VerdictView:
    kind: Optional[str]
    ok: bool
    state: State  # the box's colour: good only for a run that passed without an error
    headline: str  # "The notebook ran out of time."
    message: Optional[str]
    cell: Optional[int]
    output_tail: Optional[str]
    error: Optional[ErrorView] = None


@dataclass(frozen=True)
class ItemView:
    id: str
    title: str
    points: str  # "3 / 5"
    status: str
    status_label: str
    state: State
    evidence: str
    feedback: str
    required: bool
    hidden: bool  # only ever true in the instructor copy


@dataclass(frozen=True)
class KeyFact:
    label: str
    fact: str  # the dotted name, for readers who want to look it up in facts.json
    value: str  # "—" when not measured (ReportView.not_measured says why, once for all)
    note: str  # what the notebook printed, or what the value means
    state: State


@dataclass(frozen=True)
class LayerRow:
    index: str
    label: str
    name: str
    inp: str
    out: str
    params: str
    rf: str
    jump: str


@dataclass(frozen=True)
class LayerView:
    rows: list[LayerRow]
    has_names: bool
    total_params: str
    output: str


@dataclass(frozen=True)
class Misclassified:
    index: int
    true: Optional[int]
    predicted: Optional[int]

    @property
    def caption(self) -> str:
        true = "?" if self.true is None else self.true
        return f"true {true}" + ("" if self.predicted is None else f" -> {self.predicted}")


@dataclass(frozen=True)
class EvalView:
    accuracy: str
    predictions: Optional[str]  # one sentence when they collapse to one digit or to chance (None: they do not)
    collapsed: bool  # one digit takes most predictions: the confusion matrix and the mistakes grid add nothing
    per_class: Optional[list[str]]  # "99.39", one per digit
    confusion: Optional[list[list[int]]]
    misclassified_count: Optional[int]
    misclassified: list[Misclassified]  # the first MISCLASSIFIED_SHOWN


@dataclass(frozen=True)
class ReportView:
    student: str
    audience: Audience
    rubric: str
    title: str
    graded: str  # how it was graded: which mode, what that measures
    pass_rule: str  # what "passed" means for this rubric
    score: str
    max_score: str
    percent: float  # 0..100, for the score bar
    passed: bool
    verdict: VerdictView
    items: list[ItemView]
    hidden_count: int  # items left out of this copy
    key_facts: list[KeyFact]
    layers: Optional[LayerView]
    evaluation: Optional[EvalView]
    not_measured: str  # why facts are missing, one sentence
    notes: tuple[str, ...] = ()  # about the hand-in, not the work: late penalty, the linked commit
    stored_flag: Optional[str] = None  # stored state beyond the allowance, tensor by tensor, for the instructor


def _pair(value: Any) -> str:
    """An RF / jump as the engine gives it: 12, or [h, w] when not square."""
    if isinstance(value, (list, tuple)):
        return "x".join(num(v) for v in value)
    return "" if value is None else num(value)


GRADED_AS = {
    "static": "Static check: only the file was read; nothing ran.",
    "evaluate": "Evaluate mode: the notebook was not run; the model it exported was measured by the grader.",
    "execute": "Execute mode: the notebook ran in the sandbox, then the grader measured its model.",
    "dry-run": "Dry run: each data loader yielded two batches of fixed MNIST images on its first full pass and "
               "nothing after, so the training and test code ran once; the model was not trained to the end or "
               "measured on the test set.",
}


def graded_as(facts: Facts) -> str:
    grading = facts.grading
    if grading.mode is None:
        return ""
    return GRADED_AS["dry-run" if grading.dry_run else grading.mode]


def _verdict(facts: Facts, sheet: ScoreSheet) -> VerdictView:
    v = facts.verdict
    kind = v.kind or sheet.verdict_kind
    message = v.message or sheet.verdict_message
    if kind is None:
        headline = "The notebook was not run: this is a static check of its text."
        saved = facts.notebook.saved_error_cells
        if saved and not message:
            message = f"Its saved outputs show an error in {cells(saved)}: the run that produced them failed there."
    elif kind == "ok" and facts.grading.mode == "evaluate":
        headline = "The notebook was not run: the model it exported was measured."
    elif kind == "ok" and facts.grading.dry_run:
        headline = "The notebook ran to the end in a dry run: its training and test code ran once, on two batches."
    else:
        headline = VERDICTS[kind].headline
    if kind == "ok" and v.failed_cells and facts.grading.mode == "execute":
        headline = f"{headline[:-1]}, but {cells(v.failed_cells)} raised an error."
    if message and message.strip().rstrip(".").lower() == headline.rstrip(".").lower():
        message = None  # "the notebook ran to the end" under "The notebook ran to the end."
    # where the notebook did not run here (a static check, evaluate mode), the error its saved outputs show
    not_run_here = kind is None or facts.grading.mode == "evaluate"
    return VerdictView(kind=kind, ok=kind == "ok", state=verdict_state(kind, v.failed_cells, sheet),
                       headline=headline, message=message, cell=v.cell,
                       output_tail=v.output_tail if kind not in (None, "ok") else None,
                       error=_error(v.error) or (_error(facts.notebook.saved_error) if not_run_here else None))


def verdict_state(kind: Optional[str], failed_cells: Optional[Sequence[int]], sheet: ScoreSheet) -> State:
    """The verdict box's colour. Green (good) only when the notebook ran to the end, no cell raised and the rubric
    passed; amber (warn) when it ran but a cell raised or it did not pass; red (bad) when both, or the run itself
    failed; grey (missing) when nothing ran or is judged yet: a static check, the grader's own failure, a dry run."""
    if kind is None or kind == "grader_failed" or kind == "sandbox_error":
        return "missing"
    if kind != "ok":
        return "bad"
    if failed_cells and not sheet.passed:
        return "bad"
    if failed_cells or (not sheet.passed and not sheet.not_judged):
        return "warn"
    return "good" if sheet.passed else "missing"


def _error(error: CellErrorFacts) -> Optional[ErrorView]:
    if error.type is None and not error.message:
        return None
    return ErrorView(cell=error.cell, error=": ".join(p for p in (error.type, error.message) if p),
                     traceback="\n".join(error.traceback or []), hint=error.hint)


def _items(sheet: ScoreSheet, audience: Audience) -> list[ItemResult]:
    return list(sheet.items) if audience == "instructor" else student_items(sheet)


def _item_view(item: ItemResult) -> ItemView:
    return ItemView(id=item.id, title=item.title, points=f"{num(item.points)} / {num(item.max_points)}",
                    status=item.status, status_label=STATUS_LABELS[item.status], state=_STATUS_STATE[item.status],
                    evidence=item.evidence, feedback=item.feedback, required=item.required,
                    hidden=item.visibility == "hidden")


def _state(fact: str, value: Any, items: Sequence[ItemResult]) -> State:
    """How the rubric judged this fact (the worst of the items that read it); neutral when none did."""
    if value is None:
        return "missing"
    states = [_STATUS_STATE[i.status] for i in items if i.fact == fact]
    return min(states, key=_STATE_RANK.__getitem__) if states else "neutral"


def _key_facts(facts: Facts, items: Sequence[ItemResult]) -> list[KeyFact]:
    claims, model, train, notebook = facts.claims, facts.model, facts.train, facts.notebook

    def fact(label: str, name: str, note: str = "", claim: str = "") -> KeyFact:
        """claim: what the notebook printed, shown whether or not the grader measured the fact."""
        value = facts.get(name)
        if value is None:
            return KeyFact(label, name, "—", "; ".join(p for p in ("not measured", claim) if p), "missing")
        return KeyFact(label, name, spec(name).show_short(value), claim or note, _state(name, value, items))

    printed_accuracy = "; ".join(_printed(said, printed, facts.eval.accuracy) for said, printed in (
        ("the notebook printed", claims.accuracy), ("while graded it printed", claims.run_accuracy))
        if printed is not None)
    uncommented = notebook.uncommented_cells or []
    linear = model.layers.linear
    budget = _budget(items, "model.params.trainable") if model.params.trainable is not None else ""
    params = fact("Trainable parameters", "model.params.trainable",
                  claim="; ".join(p for p in (_printed_params(claims), budget) if p))
    if claims.params_gap and params.state in ("good", "neutral"):  # flagged whatever the rubric reads
        params = replace(params, state="warn")
    return [
        params,
        fact("Learned numbers", "model.stored.learned", _stored_note(model.stored, items)),
        fact("Test accuracy", "eval.accuracy", "measured by the grader on the 10,000 test images", printed_accuracy),
        *_unseen(facts, items),
        fact("Epochs", "train.epochs", "counted while it trained",
             f"the notebook printed {num(claims.epochs)}" if claims.epochs is not None else ""),
        fact("Receptive field", "model.rf.final", _rf_note(model)),
        fact("Comment coverage", "notebook.comment_coverage",
             f"without a comment: {cells(uncommented)}" if uncommented else "every code cell has a comment"),
        fact("Global average pooling", "model.gap", f"fully-connected layers: {linear}" if linear is not None else ""),
        fact("Training time", "train.seconds", " · ".join(p for p in (
            f"on {train.device}" if train.device else "", f"evaluated via {facts.eval.path}" if facts.eval.path else "")
            if p)),
    ]


def _budget(items: Sequence[ItemResult], fact: str) -> str:
    """Which rubric items count this number: a report states the count a budget uses."""
    ids = [i.id for i in items if i.fact == fact]
    return f"the budget ({', '.join(f'`{i}`' for i in ids)}) counts this" if ids else ""


def _stored_note(stored, items: Sequence[ItemResult]) -> str:
    """'trainable 6,434 + frozen 0 + buffers 0 + constants 0; BN running statistics 118, not counted'."""
    if stored.learned is None:
        return ""
    parts = " + ".join(f"{label} {num(getattr(stored, name) or 0)}" for label, name in (
        ("trainable", "trainable"), ("frozen", "frozen"), ("buffers", "buffers"), ("constants", "constants")))
    budget = _budget(items, "model.stored.learned")
    return f"{parts}; batch-norm running statistics {num(stored.bn_stats or 0)}, not counted" + (
        f"; {budget}" if budget else "")


def _stored_flag(facts: Facts) -> Optional[str]:
    """Stored state beyond trainable parameters and BN statistics over the allowance: what to look at, by name."""
    stored = facts.model.stored
    if not stored.flagged:
        return None
    shown = stored.flagged[:6]
    more = f" and {len(stored.flagged) - 6} more" if len(stored.flagged) > 6 else ""
    return (f"Besides its trainable parameters and batch-norm statistics the model stores {num(stored.carried)} "
            f"numbers, over the {num(ALLOWANCE)} a CNN needs: {'; '.join(shown)}{more}. Check what these tensors "
            "hold: a copy of training or test data in the model is not a learned network.")


UNSEEN_FLAG = 1.0  # percentage points the test accuracy may exceed the accuracy on unseen digits before a flag


def _unseen(facts: Facts, items: Sequence[ItemResult]) -> list[KeyFact]:
    """The accuracy on QMNIST's unseen digits, only when measured (it is opt-in), flagged over UNSEEN_FLAG."""
    ev = facts.eval
    if ev.unseen_accuracy is None:
        return []
    note = "measured on QMNIST's 50,000 digits beyond MNIST's test set, which no notebook can have seen"
    state = _state("eval.unseen_accuracy", ev.unseen_accuracy, items)
    if ev.unseen_gap is not None:
        note += f"; {spec('eval.unseen_gap').show_short(ev.unseen_gap)} from the test accuracy to this"
        if ev.unseen_gap > UNSEEN_FLAG:
            note += (f": more than {UNSEEN_FLAG:g} point lower on unseen digits, so the test accuracy owes something "
                     "to MNIST's test set itself (check how the model was trained and what it stores)")
            state = "warn"
    return [KeyFact("Accuracy on unseen digits", "eval.unseen_accuracy", spec("eval.unseen_accuracy").show_short(
        ev.unseen_accuracy), note, state)]


def _printed_params(claims: ClaimsFacts) -> str:
    """'the notebook printed 7,210 trainable; the model graded has 7,042, 168 fewer (the code handed in differs from
    what was run?)': any difference is flagged, a count is exact."""
    if claims.params is None:
        return ""
    text = f"the notebook printed {num(claims.params)}"
    gap = claims.params_gap
    if not gap:
        return text
    kind = " trainable" if claims.params_kind == "trainable" else ""
    return (f"{text}{kind}; the model graded has {num(claims.params - gap)}, {num(abs(gap))} "
            f"{'fewer' if gap > 0 else 'more'} (the code handed in differs from what was run?)")


CLAIM_FLAG = 0.5  # percentage points between a printed and the measured accuracy that a report flags


def _printed(said: str, printed: float, measured: Optional[float]) -> str:
    """'while graded it printed 99.65% (+89.65 points: more than 0.5 over what was measured)'."""
    text = f"{said} {spec('claims.accuracy').show_short(printed)}"
    if measured is None:
        return text
    gap = printed - measured
    flag = f": more than {CLAIM_FLAG:g} over what was measured" if gap > CLAIM_FLAG else ""
    return text + f" ({spec('claims.accuracy_gap').show_short(gap)}{flag})"


def _rf_note(model) -> str:
    """Which layer the receptive field belongs to, so it agrees with the layer table."""
    where = (f"at layer {model.rf.layer}, the last before global pooling or flatten"
             if model.rf.layer is not None else "at the last spatial layer")
    cover = {True: "it covers the whole input", False: "smaller than the input", None: ""}[model.rf.covers_input]
    return f"{where}; {cover}" if cover else where


def _layers(facts: Facts) -> Optional[LayerView]:
    table = facts.model.table
    if not table:
        return None
    rows = [LayerRow("0", "input", "", "", table[0].get("in", ""), "", "1", "1")]
    rows += [LayerRow(index=str(r.get("index", "")), label=str(r.get("label", "")), name=str(r.get("name") or ""),
                      inp=str(r.get("in", "")), out=str(r.get("out", "")),
                      params=num(r["params"]) if r.get("params") else "",
                      rf=_pair(r.get("rf")), jump=_pair(r.get("jump"))) for r in table]
    total = facts.model.params.trainable
    if total is None:
        total = sum(r.get("params") or 0 for r in table)
    return LayerView(rows=rows, has_names=any(r.name for r in rows), total_params=num(total), output=rows[-1].out)


def misclassified_samples(indices: Optional[Sequence[int]], labels: Optional[Digits] = None,
                          predictions: Optional[Digits] = None,
                          limit: int = MISCLASSIFIED_SHOWN) -> list[Misclassified]:
    """The first `limit` misclassified test images with their true (and, where known, predicted) digit."""
    def at(values, i):
        return int(values[i]) if values is not None and 0 <= i < len(values) else None

    return [Misclassified(int(i), at(labels, i), at(predictions, i)) for i in (indices or [])[:limit]]


COLLAPSED = 0.9  # the share of predictions one digit takes for them to be summed up in one sentence
CHANCE = 15.0  # percent: an accuracy at or below this is a guess (one digit in ten is 10%)


def predicted_share(confusion: Sequence[Sequence[int]]) -> tuple[int, float]:
    """The digit predicted most often and the share of the test images it was predicted for ((0, 0.0) for a
    matrix that is not rectangular: the confusion plot says what is wrong with it)."""
    width = len(confusion[0]) if confusion else 0
    if not width or any(len(row) != width for row in confusion):
        return 0, 0.0
    columns = [sum(row[d] for row in confusion) for d in range(width)]
    total = sum(columns)
    if not total:
        return 0, 0.0
    digit = max(range(len(columns)), key=columns.__getitem__)
    return digit, columns[digit] / total


def prediction_summary(confusion: Optional[Sequence[Sequence[int]]], accuracy: Optional[float]) -> Optional[str]:
    """One sentence for predictions that collapse to one digit or to chance; None for a model that tells digits apart.

    'The model predicts 7 for every test image; its accuracy, 10.28%, is chance level: it has not learned.'
    """
    digit, share = predicted_share(confusion) if confusion else (0, 0.0)
    parts = []
    if share >= COLLAPSED:
        parts.append(f"The model predicts {digit} for "
                     + ("every test image" if share >= 0.9995 else f"{share:.0%} of the test images"))
    if accuracy is not None and (parts or accuracy <= CHANCE):
        parts.append(f"accuracy {accuracy:.2f}%"
                     + (" is chance level (a guess is right for one image in ten): it has not learned to tell the "
                        "digits apart" if accuracy <= CHANCE else ""))
    if not parts:
        return None
    text = "; ".join(parts)
    return text[0].upper() + text[1:] + "."


def _evaluation(facts: Facts, labels, predictions) -> Optional[EvalView]:
    ev = facts.eval
    if ev.accuracy is None:
        return None
    return EvalView(
        accuracy=spec("eval.accuracy").show_short(ev.accuracy),
        predictions=prediction_summary(ev.confusion, ev.accuracy),
        collapsed=bool(ev.confusion and predicted_share(ev.confusion)[1] >= COLLAPSED),
        per_class=[f"{v:.2f}" for v in ev.per_class] if ev.per_class is not None else None,
        confusion=ev.confusion,
        misclassified_count=len(ev.misclassified) if ev.misclassified is not None else None,
        misclassified=misclassified_samples(ev.misclassified, labels, predictions),
    )


def build_view(facts: Facts, sheet: ScoreSheet, *, student: str, audience: Audience = "student",
               labels: Optional[Digits] = None, predictions: Optional[Digits] = None,
) -> ReportView:
    """The report's content for one student. `labels` / `predictions`: the full test set's, for misclassified digits."""
    if audience not in ("student", "instructor"):
        raise ValueError(f"audience must be 'student' or 'instructor', not {audience!r}")
    shown = _items(sheet, audience)
    not_judged = [i for i in sheet.not_judged if i in {item.id for item in shown}]
    reason = not_measured_reason(facts)
    return ReportView(
        student=student, audience=audience, rubric=sheet.rubric, title=sheet.title, graded=graded_as(facts),
        pass_rule=(sheet.pass_rule if audience == "instructor" else student_pass_rule(sheet))
        + (f"; not judged at this depth: {', '.join(not_judged)}" if sheet.pass_rule and not_judged else ""),
        score=num(sheet.score) if sheet.score is not None else NO_SCORE, max_score=num(sheet.max_score),
        percent=max(0.0, min(100.0, 100 * sheet.score / sheet.max_score)) if sheet.max_score and sheet.score else 0.0,
        passed=sheet.passed, verdict=_verdict(facts, sheet), items=[_item_view(i) for i in shown],
        hidden_count=len(sheet.items) - len(shown), key_facts=_key_facts(facts, shown),
        layers=_layers(facts), evaluation=_evaluation(facts, labels, predictions), not_measured=reason,
        notes=tuple(_hand_in_notes(facts, sheet)), stored_flag=_stored_flag(facts),
    )


def _hand_in_notes(facts: Facts, sheet: ScoreSheet) -> list[str]:
    """What the LMS said about the hand-in: late (and what it cost), the linked commit."""
    out = []
    if facts.submission.late:
        out.append(f"Handed in late: {num(sheet.late_penalty)} points taken off (the rubric's late penalty)."
                   if sheet.late_penalty else "Handed in late (the LMS marked it so; this rubric takes nothing off).")
    if facts.submission.commit:
        out.append(f"Graded from {facts.submission.link or 'a linked repository'} at commit "
                   f"{facts.submission.commit[:12]} ({facts.submission.commit_date})"
                   + (f", {facts.submission.notebook_path}" if facts.submission.notebook_path else "") + ".")
    return out
