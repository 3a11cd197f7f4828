"""Request signatures: `X-Grader-Signature: sha256=<hex HMAC-SHA256(secret, timestamp + "." + raw body)>`.

Requests to /v1/submissions are checked here before anything else is done with
them; callbacks we send are signed the same way, so one receiver library serves both.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Mapping, Optional

from grader.service.errors import ServiceError
from grader.service.settings import SIGNATURE_WINDOW_SECONDS

SIGNATURE = "X-Grader-Signature"
TIMESTAMP = "X-Grader-Timestamp"
DELIVERY = "X-Grader-Delivery"
HOW = f'{SIGNATURE}: sha256=<hex HMAC-SHA256(secret, {TIMESTAMP} + "." + raw body)>'


def signature(secret: bytes, timestamp: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret, timestamp.encode("ascii") + b"." + body, hashlib.sha256).hexdigest()


def signed_headers(secret: bytes, body: bytes, *, delivery: Optional[str] = None,
                   now: Optional[float] = None) -> dict[str, str]:
    timestamp = str(int(time.time() if now is None else now))
    headers = {TIMESTAMP: timestamp, SIGNATURE: signature(secret, timestamp, body)}
    if delivery is not None:
        headers[DELIVERY] = delivery
    return headers


def _refused(what: str, fix: str, where: str = SIGNATURE) -> ServiceError:
    return ServiceError(401, "unauthenticated", what, where=where, fix=fix)


def verify(secret: bytes, headers: Mapping[str, str], body: bytes, *, now: Optional[float] = None,
           window: float = SIGNATURE_WINDOW_SECONDS) -> str:
    """The request's signature if it is valid and fresh; else a 401 ServiceError that says which check failed."""
    given, stamp = headers.get(SIGNATURE), headers.get(TIMESTAMP)
    if not given:
        raise _refused(f"the request is not signed: no {SIGNATURE} header", f"sign every request: {HOW}")
    if not stamp:
        raise _refused(f"no {TIMESTAMP} header", f"send the Unix time (seconds) you signed with: {HOW}",
                       where=TIMESTAMP)
    try:
        signed_at = int(stamp)
    except ValueError:
        raise _refused(f"{TIMESTAMP} {stamp[:40]!r} is not a Unix time in seconds",
                       "send an integer such as 1767225600", where=TIMESTAMP) from None
    age = (time.time() if now is None else now) - signed_at
    if abs(age) > window:
        when = f"{age:.0f} s old" if age > 0 else f"{-age:.0f} s in the future"
        raise _refused(f"the request was signed {when}; at most {window:.0f} s are accepted",
                       "sign each request (and each retry) when you send it, and check the sender's clock (NTP)",
                       where=TIMESTAMP)
    expected = signature(secret, stamp, body)
    # compare_digest on bytes: constant time, and no exception for a non-ASCII forgery.
    if not hmac.compare_digest(expected.encode(), given.strip().encode("utf-8", "replace")):
        raise _refused("the signature does not match the request body",
                       f"sign the exact bytes you send, with the shared secret: {HOW}")
    return expected
