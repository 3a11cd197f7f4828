"""Errors a caller can cause: an HTTP status, a stable code, and what is wrong, where, and what to do."""

from __future__ import annotations

from typing import Optional


class ServiceError(Exception):
    """Raised anywhere in the service; rendered as JSON under /v1 and as a page elsewhere."""

    def __init__(self, status: int, code: str, what: str, *, where: Optional[str] = None,
                 fix: Optional[str] = None, headers: Optional[dict[str, str]] = None):
        self.status, self.code, self.what, self.where, self.fix = status, code, what, where, fix
        self.headers = headers or {}
        super().__init__(f"{status} {code}: {what}")

    def body(self) -> dict:
        return {"error": {"status": self.status, "code": self.code, "what": self.what, "where": self.where,
                          "fix": self.fix}}
