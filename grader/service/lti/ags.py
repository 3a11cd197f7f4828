"""Grade passback through LTI Assignment and Grade Services: a Score POSTed to `{lineitem}/scores`.

The line item is the launch's own (`lineitem` in the AGS claim), or, when the link has none but the
platform lets us manage line items (`lineitems`), the one found or created for the assignment
(lineitems.py). Tokens and the own-hosts check are tokens.py's.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Optional
from urllib.parse import urlsplit, urlunsplit

from grader.service.lti.config import Platform, Registrations
from grader.service.lti.lineitems import LineItems, Resource
from grader.service.lti.tokens import SCORE_SCOPE, ServiceCalls, excerpt
from grader.service.outbox import Permanent

SCORE_TYPE = "application/vnd.ims.lis.v1.score+json"


def scores_url(lineitem: str) -> str:
    """{lineitem}/scores, keeping the query (Moodle's line items carry ?type_id=...)."""
    parts = urlsplit(lineitem)
    return urlunsplit(parts._replace(path=parts.path.rstrip("/") + "/scores"))


def score_body(user_id: str, score: float, max_score: float, comment: str, at: float) -> dict:
    return {
        "userId": user_id,
        "scoreGiven": score,
        "scoreMaximum": max_score,
        "activityProgress": "Completed",
        "gradingProgress": "FullyGraded",  # Canvas records a score only when it is FullyGraded
        "timestamp": datetime.fromtimestamp(at, timezone.utc).isoformat(timespec="milliseconds"),  # Moodle needs it
        "comment": comment,
    }


class ScorePoster:
    def __init__(self, registrations: Registrations, calls: ServiceCalls, lineitems: LineItems):
        self.registrations, self.calls, self.lineitems = registrations, calls, lineitems

    def platform(self, lti: dict) -> Platform:
        platform = self.registrations.find(lti.get("issuer", ""), lti.get("client_id"))
        if platform is None:
            raise Permanent(f"no registered platform for issuer {lti.get('issuer')!r}: add it to the platform file")
        return platform

    def post(self, lti: dict, body: dict, resource: Resource) -> None:
        platform = self.platform(lti)
        lineitem = lti.get("lineitem") or self.lineitems.find_or_create(
            platform, lti["lineitems"], resource, lti.get("resource_link_id"))
        response = self.calls.call(platform, "POST", scores_url(lineitem), SCORE_SCOPE, "line item", json=body,
                                   headers={"Content-Type": SCORE_TYPE})
        if response.status_code in (400, 403, 404, 422):
            raise Permanent(f"{platform.label} refused the score for line item {lineitem} ({excerpt(response)})")
        response.raise_for_status()

    def send(self, lti: dict, resource: Resource, score: Optional[float], max_score: Optional[float], comment: str,
             at: float) -> None:
        self.post(lti, score_body(lti["user_id"], score or 0.0, max_score or 0.0, comment, at), resource)
