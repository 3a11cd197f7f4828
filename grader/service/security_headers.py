"""Headers on every answer: who may frame our pages (an LMS shows them in an iframe), no MIME sniffing, and no
Referer (a submission's address is all it takes to read its report)."""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from grader.service.lti.config import Registrations


def origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def frame_ancestors(configured: Iterable[str], registrations: Registrations) -> list[str]:
    """Ourselves (the submission page frames its report), and the origins given with --frame-ancestors, else every
    origin the registered platforms use (issuer and login pages)."""
    given = [origin(url) if "://" in url else url for url in configured]
    if not given:
        given = list({origin(url): None for p in registrations.platforms for url in (p.issuer, p.auth_login_url)})
    return ["'self'", *(g for g in given if g != "'self'")]


def security_headers(ancestors: list[str]) -> dict[str, str]:
    return {"Content-Security-Policy": f"frame-ancestors {' '.join(ancestors)}; base-uri 'none'; object-src 'none'",
            "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}


class SecurityHeaders:
    """ASGI middleware: sets the headers on every response but a 500 (starlette answers those outside all
    middleware; the 500 handler sets them itself)."""

    def __init__(self, app: ASGIApp, headers: dict[str, str]):
        self.app = app
        self.headers = [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers.items()]
        self.names = {name for name, _ in self.headers}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                kept = [h for h in message.get("headers", []) if h[0].lower() not in self.names]
                message["headers"] = kept + self.headers
            await send(message)
        await self.app(scope, receive, with_headers)
