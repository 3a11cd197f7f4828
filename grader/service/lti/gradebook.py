"""The instructor's grade book of one assignment: the course roster (NRPS) beside each member's latest
submission. Without a roster, every submission to the assignment; with one, its members only, since
another course on this server may grade the same assignment."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from grader.service.lti.nrps import Member
from grader.service.store import Job


@dataclass(frozen=True)
class Row:
    user_id: str
    name: str
    email: str
    roles: str  # short names, for reading: "Learner, Mentor"
    status: str  # the submission's (queued, running, graded, failed), "" when none
    score: Optional[float] = None
    max_score: Optional[float] = None
    job_id: Optional[str] = None


def _short(role: str) -> str:
    return role.rsplit("#", 1)[-1].rsplit("/", 1)[-1]


def rows(roster: list[Member], latest: dict[str, Job]) -> list[Row]:
    listed = [Row(m.user_id, m.name, m.email, ", ".join(map(_short, m.roles)), *_grade(latest.get(m.user_id)))
              for m in roster]
    if roster:
        return listed
    return [Row(student, "", "", "", *_grade(job)) for student, job in sorted(latest.items())]


def _grade(job: Optional[Job]) -> tuple:
    if job is None:
        return "", None, None, None
    return job.status, job.score, job.max_score, job.id
