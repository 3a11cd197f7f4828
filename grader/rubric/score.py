"""Scoring: facts + rubric -> score sheet. Pure: no files, no processes, the same answer every time.

Each item reads one fact. A fact this depth of grading cannot judge (a static
check, a dry run, evaluate mode: see `not_judged_reason`) scores zero as
`not_judged` and never counts as passed. A static check and a dry run keep such
items in the maximum (the full run judges them: their score is "so far"); evaluate
mode, a final grade that never runs the notebook, leaves what only a run shows out
of the maximum (`ScoreSheet.left_out`), so a submission that meets the assignment
scores full marks. A fact a run should have measured and
did not (None) scores zero as `not_measured`, with the verdict's reason, and
counts as not passed. Otherwise the comparison, or the first matching band,
decides the points. `passed` is the rubric's pass rule (`pass:`; by default every
required item passes), and it is false while a required item is not judged.
With show_hidden=False (what a student sees before the due date) items that are
not `visible` are left out of the sheet, its score and its `passed`.
When the grader itself failed (verdict `grader_failed`) nothing about the
submission is known: every item is `not_judged`, the sheet is not passed and
has no score (None), which the gradebook and the LMS files leave blank.
"""

from __future__ import annotations

from typing import Any, Optional

from grader.facts import Facts
from grader.formatting import num, pct
from grader.rubric.schema import RENDER_ERRORS, Comparison, Item, Rubric, needs_run, template
from grader.rubric.sheet import ItemResult, ScoreSheet, Status

# Facts whose numbers are not plain counts. Accuracies are percentages already; a share is 0..1.
_PERCENT = {"eval.accuracy", "claims.accuracy", "claims.last_accuracy"}
_SHARE = {"notebook.comment_coverage"}
_PERCENT_POINTS = {"claims.accuracy_gap"}
_LIST_SHOWN = 8

# What a verdict means for the facts a run did not establish.
_VERDICT = {
    "timeout": "the notebook ran out of time",
    "memory": "the notebook ran out of memory",
    "crash": "the notebook crashed",
    "no_model": "no model was found after the notebook ran",
    "bad_model": "the model could not be measured",
    "invalid_notebook": "the notebook could not be read",
    "nothing_to_grade": "no notebook to grade was picked out of the hand-in",
    "output_limit": "the notebook printed more than the output limit",
    "missing_module": "the notebook imports a module that is neither in the grading environment nor handed in with it",
    "sandbox_error": "the sandbox failed to run the notebook",
    "grader_failed": "the grader failed",
    "disk": "the notebook filled its disk quota (bytes or files)",
    "not_exportable": "torch.export could not capture the model, so it was not measured",
    "lookup": "the model looks answers up in stored data, so its accuracy is not credited",
}
_MESSAGE_SHOWN = 200


def format_value(fact: str, value: Any) -> str:
    """A fact's value as a person reads it: 13,808; 99.42%; 83.3%; true; [3, 7]; not measured."""
    if value is None:
        return "not measured"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        if fact in _PERCENT:
            return num(value) + "%"
        if fact in _SHARE:
            return pct(value)
        if fact in _PERCENT_POINTS:
            return num(value) + " percentage points"
        return num(value)
    if isinstance(value, list):
        shown = ", ".join(format_value("", v) for v in value[:_LIST_SHOWN])
        return f"[{shown}, ...] ({len(value)} in all)" if len(value) > _LIST_SHOWN else f"[{shown}]"
    return str(value)


def needs(item: Item, comparison: Comparison) -> str:
    """'< 20,000' / '>= 99.4%' / 'one of ok' in the item's units."""
    return comparison.needs(lambda ref: format_value(item.fact, ref))


def items_needing_execution(rubric: Rubric) -> list[str]:
    """Ids of the items a static check cannot judge: their facts come from running the notebook."""
    return [item.id for item in rubric.items if needs_run(item.fact)]


NOT_GRADED = "not graded: the grader failed — not your fault"

# What only running the notebook shows (the training counters, how the run ended). Evaluate mode measures the
# exported model and reads the saved outputs (their errors decide `verdict.failed_cells`), which show neither: cells
# can have been run out of order, edited after, or in a kernel whose state no cell made.
_RUN_ONLY = ("train.", "verdict.kind", "verdict.cell", "verdict.message")


def _left_out(facts: Facts, fact: str) -> bool:
    """Evaluate mode never judges `fact`: its points are left out of the maximum."""
    return facts.verdict.graded and facts.grading.mode == "evaluate" and fact.startswith(_RUN_ONLY)


def not_judged_reason(facts: Facts, fact: str) -> Optional[str]:
    """Why this depth of grading cannot judge `fact` (None: it can). Facts without a grading mode are all judged."""
    if not facts.verdict.graded:
        return f"{NOT_GRADED} ({facts.verdict.message})"
    grading = facts.grading
    if grading.mode == "static" and needs_run(fact):
        return "not judged in a static check: it needs a run"
    if _left_out(facts, fact):
        return ("not judged in evaluate mode: the notebook was not run, only the model it exported was measured; "
                "left out of the maximum score")
    if grading.dry_run and fact.startswith(("eval.", "train.", "claims.accuracy_gap")):
        return ("not judged in a dry run: the model trained on two batches only and was not measured; run without "
                "--dry-run")
    return None


def not_measured_reason(facts: Facts, fact: str) -> str:
    verdict = facts.verdict
    if fact == "claims.accuracy_gap" and facts.claims.accuracy is not None and verdict.kind in (None, "ok"):
        return (f"the notebook printed {num(facts.claims.accuracy)}%, but the grader has no measurement of its "
                "own to compare it with")
    if fact == "claims.params_gap" and facts.claims.params is not None and verdict.kind in (None, "ok"):
        return (f"the notebook printed {num(facts.claims.params)} parameters, but the grader has no count of its own "
                "to compare it with")
    if verdict.kind not in (None, "ok"):
        reason = _VERDICT.get(verdict.kind, f"the verdict is {verdict.kind}")
        if verdict.cell is not None:
            reason += f" in code cell {verdict.cell}"
        message = (verdict.message or "").strip().splitlines()
        if message:
            first = message[0]
            reason += f" ({first[:_MESSAGE_SHOWN]}{'...' if len(first) > _MESSAGE_SHOWN else ''})"
        return reason
    if fact == "train.epochs_checked" and facts.train.epochs_check:  # the harness's count and its cross-check
        return facts.train.epochs_check
    if fact == "claims.accuracy_gap":
        return "the notebook's outputs show no test accuracy to compare with the measured one"
    if fact == "claims.params_gap":
        return "the notebook's outputs show no parameter count to compare with the measured one"
    if fact.startswith("claims."):
        return "the notebook's outputs do not show it"
    if verdict.kind is None and needs_run(fact):
        return "the notebook was not run (static check)"
    return f"no stage measured {fact}"


def _judge(item: Item, value: Any) -> tuple[float, Status, str]:
    shown = f"{item.fact} = {format_value(item.fact, value)}"
    if item.bands is None:
        if item.holds(value):
            return item.points, "passed", f"{shown}; needs {needs(item, item)}"
        return 0.0, "failed", f"{shown}; needs {needs(item, item)}"
    band = next((b for b in item.bands if b.holds(value)), None)
    full = item.full_band
    if band is None:
        ladder = ", ".join(f"{needs(item, b)} for {num(b.points)}" for b in item.bands)
        return 0.0, "failed", f"{shown}; no band matched (points: {ladder})"
    if band.points >= item.points:
        return item.points, "passed", f"{shown}; needs {needs(item, band)}"
    return band.points, "partial", (f"{shown}; {needs(item, band)} gives {num(band.points)} of {num(item.points)} "
                                    f"points ({needs(item, full)} gives all)")


def _feedback(item: Item, status: Status, value: Any, points: float, facts_json: dict, reason: Optional[str]) -> str:
    if status == "not_judged":  # the item's own texts speak of a value that was not judged
        return f"{reason[0].upper()}{reason[1:]}."
    text = item.feedback.for_status(status)
    if text is None:
        if status == "not_measured":
            return f"Not measured: {reason}."
        return f"{reason[0].upper()}{reason[1:]}." if status == "not_judged" else ""
    try:
        return template(text).render(item.context(facts_json, value, points))
    except RENDER_ERRORS as err:  # a template that fails on these facts must not stop the batch; say so instead
        return f"(the rubric's feedback for {item.id} failed on these facts: {err})"


def score(facts: Facts, rubric: Rubric, *, show_hidden: bool = True) -> ScoreSheet:
    facts_json = facts.to_json()
    results = []
    for item in rubric.items:
        if not show_hidden and item.visibility != "visible":
            continue
        value = facts.get(item.fact)
        reason = not_judged_reason(facts, item.fact)
        if reason is not None:
            value, points, status, evidence = None, 0.0, "not_judged", reason
        elif value is None:
            reason = not_measured_reason(facts, item.fact)
            points, status, evidence = 0.0, "not_measured", f"not measured: {reason}"
        else:
            points, status, evidence = _judge(item, value)
        results.append(ItemResult(
            id=item.id, title=item.title, fact=item.fact, value=value, points=points,
            max_points=0.0 if _left_out(facts, item.fact) else item.points,
            status=status, required=item.required, visibility=item.visibility, evidence=evidence,
            feedback=_feedback(item, status, value, points, facts_json, reason)))
    total = round(sum(r.points for r in results), 6)
    max_score = round(sum(r.max_points for r in results), 6)
    penalty = 0.0
    if rubric.late is not None and facts.submission.late:
        penalty = min(total, rubric.late.points(max_score))
    rule = rubric.pass_
    not_judged = [r.id for r in results if r.required and r.status == "not_judged"]
    left_out = [r.id for r in results if _left_out(facts, r.fact)]
    holds = ((not rule.all_required or all(r.status == "passed" for r in results if r.required))
             and (rule.min_score is None or total >= rule.min_score - 1e-9))
    graded = facts.verdict.graded
    return ScoreSheet(
        rubric=rubric.id, title=rubric.title, score=round(total - penalty, 6) if graded else None, max_score=max_score,
        passed=graded and holds and not not_judged, pass_rule=rule.describe(rubric.items), not_judged=not_judged,
        left_out=left_out, items=results,
        verdict_kind=facts.verdict.kind, verdict_message=facts.verdict.message, late_penalty=penalty)
