"""Request signatures, one scheme for every request we take and every callback we send.

The signed message is, byte for byte:

    <timestamp> "." <METHOD> "." <path> "." <raw body>

- timestamp: the X-Grader-Timestamp header, Unix seconds as decimal digits;
- METHOD: the HTTP method in upper case (POST, GET);
- path: the URL path as sent, without the query string (/v1/submissions, /v1/submissions/<id>);
- raw body: the exact bytes of the body, nothing stripped (empty for a GET).

`X-Grader-Signature: sha256=<lower-case hex HMAC-SHA256(secret, message)>`. A signed GET thus names its
submission: a captured one cannot be replayed for another id, nor as a POST. With openssl:

    printf '%s.%s.%s.' "$ts" POST /v1/submissions | cat - body.json | openssl dgst -sha256 -hmac "$SECRET" -hex

The headers are checked before the body is read (`check_headers`): an unsigned, malformed or stale request
is refused without reading a byte of its body; the body is then hashed as it arrives (`Pending.update`).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections.abc import Mapping
from typing import Optional

from grader.service.errors import ServiceError
from grader.service.settings import SIGNATURE_WINDOW_SECONDS

SIGNATURE = "X-Grader-Signature"
TIMESTAMP = "X-Grader-Timestamp"
DELIVERY = "X-Grader-Delivery"
HOW = (f'{SIGNATURE}: sha256=<hex HMAC-SHA256(secret, {TIMESTAMP} + "." + METHOD + "." + path + "." + '
       f'raw body)>')
_FORMAT = re.compile(r"sha256=[0-9a-f]{64}")


def message_prefix(timestamp: str, method: str, path: str) -> bytes:
    """What comes before the raw body in the signed message (the module docstring defines the format)."""
    return f"{timestamp}.{method.upper()}.{path}.".encode()


def signature(secret: bytes, timestamp: str, method: str, path: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret, message_prefix(timestamp, method, path) + body, hashlib.sha256).hexdigest()


def signed_headers(secret: bytes, method: str, path: str, body: bytes, *, delivery: Optional[str] = None,
                   now: Optional[float] = None) -> dict[str, str]:
    timestamp = str(int(time.time() if now is None else now))
    headers = {TIMESTAMP: timestamp, SIGNATURE: signature(secret, timestamp, method, path, body)}
    if delivery is not None:
        headers[DELIVERY] = delivery
    return headers


def _refused(what: str, fix: str, where: str = SIGNATURE) -> ServiceError:
    return ServiceError(401, "unauthenticated", what, where=where, fix=fix)


class Pending:
    """A request whose headers passed: the body is fed in as it arrives, then `verify` compares."""

    def __init__(self, secret: bytes, given: str, prefix: bytes):
        self._given, self._mac = given, hmac.new(secret, prefix, hashlib.sha256)

    def update(self, chunk: bytes) -> None:
        self._mac.update(chunk)

    def verify(self) -> str:
        """The signature if it matches the message; else a 401 ServiceError."""
        expected = "sha256=" + self._mac.hexdigest()
        if not hmac.compare_digest(expected.encode(), self._given.encode()):  # constant time
            raise _refused("the signature does not match the request (method, path, timestamp and body)",
                           f"sign the exact bytes you send, for this method and path, with the shared secret: {HOW}")
        return expected


def check_headers(secret: bytes, headers: Mapping[str, str], method: str, path: str, *,
                  now: Optional[float] = None, window: float = SIGNATURE_WINDOW_SECONDS) -> Pending:
    """Everything that can be checked before the body: both headers there, the signature's format, the
    timestamp's window. Refused with a 401 ServiceError that says which check failed."""
    given, stamp = headers.get(SIGNATURE), headers.get(TIMESTAMP)
    if not given:
        raise _refused(f"the request is not signed: no {SIGNATURE} header", f"sign every request: {HOW}")
    given = given.strip()
    if not _FORMAT.fullmatch(given):
        raise _refused(f"{SIGNATURE} {given[:40]!r} is not sha256= and 64 lower-case hex digits",
                       f"send the HMAC as hex after 'sha256=': {HOW}")
    if not stamp:
        raise _refused(f"no {TIMESTAMP} header", f"send the Unix time (seconds) you signed with: {HOW}",
                       where=TIMESTAMP)
    if not stamp.isascii() or not stamp.isdigit() or len(stamp) > 12:
        raise _refused(f"{TIMESTAMP} {stamp[:40]!r} is not a Unix time in seconds",
                       "send an integer such as 1767225600", where=TIMESTAMP)
    age = (time.time() if now is None else now) - int(stamp)
    if abs(age) > window:
        when = f"{age:.0f} s old" if age > 0 else f"{-age:.0f} s in the future"
        raise _refused(f"the request was signed {when}; at most {window:.0f} s are accepted",
                       "sign each request (and each retry) when you send it, and check the sender's clock (NTP)",
                       where=TIMESTAMP)
    return Pending(secret, given, message_prefix(stamp, method, path))


def verify(secret: bytes, headers: Mapping[str, str], method: str, path: str, body: bytes, *,
           now: Optional[float] = None, window: float = SIGNATURE_WINDOW_SECONDS) -> str:
    """The signature of a request whose body is already at hand (a callback receiver), if valid and fresh."""
    pending = check_headers(secret, headers, method, path, now=now, window=window)
    pending.update(body)
    return pending.verify()
