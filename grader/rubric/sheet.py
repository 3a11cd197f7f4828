"""The score sheet: what scoring gives the reports, the gradebook and the LMS (typed, JSON-serialisable)."""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict

Status = Literal["passed", "partial", "failed", "not_measured"]
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
    score: float
    max_score: float
    passed: bool  # every required item passed
    items: list[ItemResult]
    verdict_kind: Optional[str] = None
    verdict_message: Optional[str] = None

    def failed(self) -> list[ItemResult]:
        return [item for item in self.items if item.status != "passed"]
