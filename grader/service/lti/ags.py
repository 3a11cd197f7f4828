"""Grade passback through LTI Assignment and Grade Services.

A token by OAuth2 client credentials, authenticated with a JWT client assertion
signed by our key; then a Score POSTed to `{lineitem}/scores`. The token endpoint
is the registration's; the line item must be on the platform's own hosts (checked
at launch, and here again before any token is asked for or sent).
"""

from __future__ import annotations

import threading
import time
from datetime import datetime, timezone
from typing import Optional
from urllib.parse import urlsplit, urlunsplit

import httpx

from grader.service.lti.config import Platform, Registrations
from grader.service.lti.keys import ToolKey
from grader.service.lti.launch import SCORE_SCOPE
from grader.service.outbox import Permanent

SCORE_TYPE = "application/vnd.ims.lis.v1.score+json"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


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


def _excerpt(response: httpx.Response) -> str:
    return f"HTTP {response.status_code}: {response.text[:300]}"


class ScorePoster:
    def __init__(self, registrations: Registrations, key: ToolKey, http: httpx.Client):
        self.registrations, self.key, self.http = registrations, key, http
        self._tokens: dict[tuple[str, str], tuple[float, str]] = {}
        self._lock = threading.Lock()

    def platform(self, lti: dict) -> Platform:
        platform = self.registrations.find(lti.get("issuer", ""), lti.get("client_id"))
        if platform is None:
            raise Permanent(f"no registered platform for issuer {lti.get('issuer')!r}: add it to the platform file")
        return platform

    def token(self, platform: Platform) -> str:
        key = (platform.issuer, platform.client_id)
        with self._lock:
            cached = self._tokens.get(key)
            if cached and cached[0] > time.monotonic():
                return cached[1]
        response = self.http.post(platform.auth_token_url, data={
            "grant_type": "client_credentials", "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": self.key.client_assertion(platform.client_id, platform.audience),
            "scope": SCORE_SCOPE})
        if response.status_code in (400, 401, 403):
            raise Permanent(f"{platform.label}'s token endpoint refused our client assertion ({_excerpt(response)}); "
                            f"check that the LMS has this tool's JWKS URL (or public key) and client id "
                            f"{platform.client_id}")
        response.raise_for_status()
        body = response.json()
        with self._lock:
            self._tokens[key] = (time.monotonic() + float(body.get("expires_in", 3600)) - 60, body["access_token"])
        return body["access_token"]

    def forget(self, platform: Platform) -> None:
        with self._lock:
            self._tokens.pop((platform.issuer, platform.client_id), None)

    def post(self, lti: dict, body: dict) -> None:
        platform = self.platform(lti)
        if not platform.serves(lti["lineitem"]):
            raise Permanent(f"line item {lti['lineitem'][:200]!r} is not on {platform.label}'s own hosts "
                            f"({', '.join(platform.origins)}): no token was asked for and no score sent; if its grade "
                            f"book answers there, add that origin to ags_origins in the platform file")
        response = self.http.post(scores_url(lti["lineitem"]), json=body, headers={
            "Authorization": f"Bearer {self.token(platform)}", "Content-Type": SCORE_TYPE})
        if response.status_code == 401:
            self.forget(platform)  # an expired token: the retry fetches a new one
        if response.status_code in (400, 403, 404, 422):
            raise Permanent(f"{platform.label} refused the score for line item {lti['lineitem']} "
                            f"({_excerpt(response)})")
        response.raise_for_status()

    def send(self, lti: dict, score: Optional[float], max_score: Optional[float], comment: str, at: float) -> None:
        self.post(lti, score_body(lti["user_id"], score or 0.0, max_score or 0.0, comment, at))
