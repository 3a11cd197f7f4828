"""The score sheet: what scoring gives the reports, the gradebook and the LMS (typed, JSON-serialisable)."""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict

from grader.fact_spec import VerdictKind

# not_measured: a run should have measured the fact and did not (it counts as failed);
# not_judged: this depth of grading cannot judge it (a static check, a dry run, evaluate mode).
Status = Literal["passed", "partial", "failed", "not_measured", "not_judged"]
Visibility = Literal["visible", "hidden", "after_due_date"]


class ItemResult(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    title: str
    fact: str  # the dotted fact it read
    value: object = None  # the fact's value (None: not measured)
    points: float
    max_points: float
    status: Status
    required: bool = False
    visibility: Visibility = "visible"
    evidence: str  # e.g. "model.params.trainable = 13,808; needs < 20,000"
    feedback: str  # rendered for this student


class ScoreSheet(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rubric: str  # rubric id
    title: str
    score: Optional[float]  # None: not graded (the grader failed, verdict grader_failed): left blank, never a 0
    max_score: float
    passed: bool  # the rubric's pass rule holds, and every required item was judged
    pass_rule: str = ""  # the rule in words: "every required item (params, accuracy) passes"
    not_judged: list[str] = []  # required items this depth could not judge: `passed` cannot be claimed yet
    # items this mode never judges (evaluate mode: what only a run shows), left out of `max_score` (their max_points
    # are 0); a static check or a dry run leaves nothing out: the full run judges what they cannot
    left_out: list[str] = []
    items: list[ItemResult]
    verdict_kind: Optional[VerdictKind] = None
    verdict_message: Optional[str] = None
    late_penalty: float = 0.0  # points taken off `score` for a late submission (the rubric's `late:`), already applied

    def score_out_of(self, points: float) -> Optional[float]:
        """The score on a column worth `points` (an LMS assignment's points possible, the rubric's total): what was
        left out of `max_score` is left out of it too, so full marks on what was judged are full marks there."""
        if self.score is None or not self.max_score:
            return self.score
        return round(self.score * points / self.max_score, 6)

    def failed(self) -> list[ItemResult]:
        """Items short of full marks; those left out of the maximum lost nothing and are not among them."""
        return [item for item in self.items if item.status != "passed" and item.id not in self.left_out]

    def required_not_passed(self) -> list[str]:
        """Required items that were judged (or should have been measured) and did not pass."""
        return [item.id for item in self.items if item.required and item.status not in ("passed", "not_judged")]
