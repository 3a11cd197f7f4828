"""Calls to a platform's services (AGS scores and line items, NRPS rosters) with an OAuth2 access token.

The token comes by client credentials, authenticated with a JWT client assertion signed by our key (LTI's
security framework), one per platform and set of scopes, kept until shortly before it expires. Every call
goes only to the platform's own hosts (its registered URLs and ags_origins): the URL is checked before a
token is asked for, and again for each page a `Link: rel="next"` header names.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Optional

import httpx

from grader.service.lti.config import Platform
from grader.service.lti.keys import ToolKey
from grader.service.outbox import Permanent

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
SCORE_SCOPE = "https://purl.imsglobal.org/spec/lti-ags/scope/score"
LINEITEM_SCOPE = "https://purl.imsglobal.org/spec/lti-ags/scope/lineitem"
NRPS_SCOPE = "https://purl.imsglobal.org/spec/lti-nrps/scope/contextmembership.readonly"
MAX_PAGES = 100  # a platform whose `next` links never end is cut off here


def excerpt(response: httpx.Response) -> str:
    return f"HTTP {response.status_code}: {response.text[:300]}"


class ServiceCalls:
    def __init__(self, key: ToolKey, http: httpx.Client):
        self.key, self.http = key, http
        self._tokens: dict[tuple[str, str, str], tuple[float, str]] = {}
        self._lock = threading.Lock()

    def token(self, platform: Platform, scope: str) -> str:
        key = (platform.issuer, platform.client_id, scope)
        with self._lock:
            cached = self._tokens.get(key)
            if cached and cached[0] > time.monotonic():
                return cached[1]
        response = self.http.post(platform.auth_token_url, data={
            "grant_type": "client_credentials", "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": self.key.client_assertion(platform.client_id, platform.audience), "scope": scope})
        if response.status_code in (400, 401, 403):
            raise Permanent(f"{platform.label}'s token endpoint refused our client assertion for scope {scope} "
                            f"({excerpt(response)}); check that the LMS has this tool's JWKS URL (or public key), "
                            f"client id {platform.client_id}, and this scope enabled for the tool")
        response.raise_for_status()
        body = response.json()
        with self._lock:
            self._tokens[key] = (time.monotonic() + float(body.get("expires_in", 3600)) - 60, body["access_token"])
        return body["access_token"]

    def forget(self, platform: Platform, scope: str) -> None:
        with self._lock:
            self._tokens.pop((platform.issuer, platform.client_id, scope), None)

    def call(self, platform: Platform, method: str, url: str, scope: str, what: str, **request) -> httpx.Response:
        """One request to the platform's service at `url`, with a bearer token for `scope`. A 401 (the token
        expired early) is retried once with a new token; any other status is the caller's to judge."""
        if not platform.serves(url):
            raise Permanent(f"{what} {url[:200]!r} is not on {platform.label}'s own hosts "
                            f"({', '.join(platform.origins)}): no token was asked for and nothing sent; if its "
                            f"services answer there, add that origin to ags_origins in the platform file")
        headers = request.pop("headers", {})
        for _attempt in range(2):
            response = self.http.request(method, url, headers={**headers, "Authorization":
                                                               f"Bearer {self.token(platform, scope)}"}, **request)
            if response.status_code != 401:
                break
            self.forget(platform, scope)
        return response

    def pages(self, platform: Platform, url: str, scope: str, accept: str, what: str,
              params: Optional[dict] = None) -> Iterator[httpx.Response]:
        """GET `url` and each page its `Link: rel="next"` header names (each on the platform's own hosts)."""
        if params:  # added to the URL's own query (Moodle's carry ?type_id=...), which httpx's params= replaces
            url = str(httpx.URL(url).copy_merge_params(params))
        seen: set[str] = set()
        while url and url not in seen and len(seen) < MAX_PAGES:
            seen.add(url)
            response = self.call(platform, "GET", url, scope, what, headers={"Accept": accept})
            if 400 <= response.status_code < 500:
                raise Permanent(f"{platform.label} refused to list the {what} at {url} ({excerpt(response)})")
            response.raise_for_status()
            yield response
            following = response.links.get("next", {}).get("url")
            url = str(response.url.join(following)) if following else ""  # a relative link, resolved; "": the last
