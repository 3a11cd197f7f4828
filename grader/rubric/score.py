"""Scoring: facts + rubric -> score sheet. Pure: no files, no processes, the same answer every time.

Each item reads one fact. A fact this depth of grading cannot judge (a static
check, a dry run, evaluate mode: the fact's declaration says which depths judge
it; `reasons.not_judged_reason`) scores zero as
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

from grader.facts import Facts, spec
from grader.formatting import num
from grader.rubric.reasons import left_out, not_judged_reason, not_measured_reason
from grader.rubric.schema import RENDER_ERRORS, Comparison, Item, Rubric, template
from grader.rubric.sheet import ItemResult, ScoreSheet, Status


def needs(item: Item, comparison: Comparison) -> str:
    """'< 20,000' / '>= 99.4%' / 'one of ok' in the item's units."""
    return comparison.needs(spec(item.fact).show)


def items_needing_execution(rubric: Rubric) -> list[str]:
    """Ids of the items a static check cannot judge: their facts come from running the notebook."""
    return [item.id for item in rubric.items if not spec(item.fact).judged_at("static")]


def _judge(item: Item, value: Any) -> tuple[float, Status, str]:
    shown = f"{item.fact} = {spec(item.fact).show(value)}"
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
    assert full is not None, f"{item.id}: validation (Item) lets no banded item lack a band with all its points"
    return band.points, "partial", (f"{shown}; {needs(item, band)} gives {num(band.points)} of {num(item.points)} "
                                    f"points ({needs(item, full)} gives all)")


def _feedback(item: Item, status: Status, value: Any, points: float, facts_json: dict, reason: Optional[str]) -> str:
    if status == "not_judged":  # the item's own texts speak of a value that was not judged
        assert reason is not None, f"{item.id}: an item that is not judged has the reason why"
        return f"{reason[0].upper()}{reason[1:]}."
    text = item.feedback.for_status(status)
    if text is None:
        return f"Not measured: {reason}." if status == "not_measured" else ""
    try:
        return template(text).render(item.context(facts_json, value, points))
    except RENDER_ERRORS as err:  # a template that fails on these facts must not stop the batch; say so instead
        return f"(the rubric's feedback for {item.id} failed on these facts: {err})"


def score(facts: Facts, rubric: Rubric, *, show_hidden: bool = True) -> ScoreSheet:
    facts_json = facts.to_json()
    results = []
    status: Status
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
            max_points=0.0 if left_out(facts, item.fact) else item.points,
            status=status, required=item.required, visibility=item.visibility, evidence=evidence,
            feedback=_feedback(item, status, value, points, facts_json, reason)))
    total = round(sum(r.points for r in results), 6)
    max_score = round(sum(r.max_points for r in results), 6)
    penalty = 0.0
    if rubric.late is not None and facts.submission.late:
        penalty = min(total, rubric.late.points(max_score))
    rule = rubric.pass_
    not_judged = [r.id for r in results if r.required and r.status == "not_judged"]
    left = [r.id for r in results if left_out(facts, r.fact)]
    holds = ((not rule.all_required or all(r.status == "passed" for r in results if r.required))
             and (rule.min_score is None or total >= rule.min_score - 1e-9))
    graded = facts.verdict.graded
    return ScoreSheet(
        rubric=rubric.id, title=rubric.title, score=round(total - penalty, 6) if graded else None, max_score=max_score,
        passed=graded and holds and not not_judged, pass_rule=rule.describe(rubric.items), not_judged=not_judged,
        left_out=left, items=results,
        verdict_kind=facts.verdict.kind, verdict_message=facts.verdict.message, late_penalty=penalty)
