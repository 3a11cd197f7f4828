"""Why a fact has no value to judge, in words a student reads: the one place for these reasons (pure).

A depth of grading that cannot judge a fact (its declaration says which can: `grader.facts.spec`) makes it
`not_judged`; a fact a run should have measured and did not is `not_measured`, with the verdict's reason. Scoring
and the reports read both from here.
"""

from __future__ import annotations

from typing import Optional

from grader.fact_spec import VERDICTS, Depth
from grader.facts import Facts, spec
from grader.formatting import num

NOT_GRADED = "not graded: the grader failed — not your fault"
NOT_RUN = "the notebook was not run (static check: only its text was read)"
_MESSAGE_SHOWN = 200

# Why a depth does not judge what its declaration leaves out. Evaluate mode measures the exported model and reads
# the saved outputs, which do not show how a run went: cells can have been run out of order, edited after, or in a
# kernel whose state no cell made.
_DEPTH_CANNOT = {
    "static": "not judged in a static check: it needs a run",
    "evaluate": ("not judged in evaluate mode: the notebook was not run, only the model it exported was measured; "
                 "left out of the maximum score"),
    "dry_run": "not judged in a dry run: the model trained on two batches only and was not measured; run without "
               "--dry-run",
}


def depth(facts: Facts) -> Optional[Depth]:
    """How deep these facts were graded (None: facts without a grading mode, which are all judged)."""
    grading = facts.grading
    if grading.mode is None:
        return None
    return "dry_run" if grading.dry_run else grading.mode


def left_out(facts: Facts, fact: str) -> bool:
    """Evaluate mode never judges `fact`: its points are left out of the maximum (a final grade that never runs the
    notebook does not hold against a submission what only a run shows)."""
    return facts.verdict.graded and depth(facts) == "evaluate" and not spec(fact).judged_at("evaluate")


def not_judged_reason(facts: Facts, fact: str) -> Optional[str]:
    """Why this depth of grading cannot judge `fact` (None: it can)."""
    if not facts.verdict.graded:
        return f"{NOT_GRADED} ({facts.verdict.message})"
    at = depth(facts)
    if at is None or spec(fact).judged_at(at):
        return None
    return _DEPTH_CANNOT[at]


def not_measured_reason(facts: Facts, fact: Optional[str] = None) -> str:
    """Why `fact` has no value; without a fact, why the report's facts shown as — have none."""
    verdict = facts.verdict
    ran = verdict.kind in (None, "ok")
    if fact == "claims.accuracy_gap" and facts.claims.accuracy is not None and ran:
        return (f"the notebook printed {num(facts.claims.accuracy)}%, but the grader has no measurement of its "
                "own to compare it with")
    if fact == "claims.params_gap" and facts.claims.params is not None and ran:
        return (f"the notebook printed {num(facts.claims.params)} parameters, but the grader has no count of its own "
                "to compare it with")
    if not ran:
        return _verdict_reason(facts, fact)
    if fact is None:
        return NOT_RUN if verdict.kind is None else VERDICTS["ok"].because
    if fact == "train.epochs_checked" and facts.train.epochs_check:  # the harness's count and its cross-check
        return facts.train.epochs_check
    if fact == "claims.accuracy_gap":
        return "the notebook's outputs show no test accuracy to compare with the measured one"
    if fact == "claims.params_gap":
        return "the notebook's outputs show no parameter count to compare with the measured one"
    declared = spec(fact)
    if declared.provenance == "notebook":
        return "the notebook's outputs do not show it"
    if verdict.kind is None and not declared.judged_at("static"):
        return NOT_RUN
    return f"no stage measured {fact}"


def _verdict_reason(facts: Facts, fact: Optional[str]) -> str:
    """For one fact, the verdict's `because` and the first line of its message: 'the notebook ran out of time in code
    cell 4 (...)'. For all of them (the report, which shows the message beside it), its label: 'the notebook ran out
    of time in code cell 4, so the later stages did not run'."""
    verdict = facts.verdict
    assert verdict.kind is not None, "only a verdict that stopped the run (not a static check) has a reason"
    text = VERDICTS[verdict.kind]
    where = f" in code cell {verdict.cell}" if verdict.cell is not None else ""
    if fact is None:
        return f"the notebook {text.label}{where}, so the later stages did not run"
    reason = text.because + where
    message = (verdict.message or "").strip().splitlines()
    if message:
        first = message[0]
        reason += f" ({first[:_MESSAGE_SHOWN]}{'...' if len(first) > _MESSAGE_SHOWN else ''})"
    return reason
