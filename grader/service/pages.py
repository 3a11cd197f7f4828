"""Server-rendered pages (Jinja2, no JavaScript): the upload page, a submission's page, messages."""

from __future__ import annotations

from pathlib import Path

from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from grader.service.errors import ServiceError

REFRESH_SECONDS = 2  # a waiting submission's page reloads itself this often

_env = Environment(loader=FileSystemLoader(Path(__file__).parent / "templates"),
                   autoescape=select_autoescape(["j2", "html"]), trim_blocks=True, lstrip_blocks=True)


def page(template: str, status_code: int = 200, headers: dict | None = None, **context) -> HTMLResponse:
    return HTMLResponse(_env.get_template(template).render(refresh=REFRESH_SECONDS, **context),
                        status_code=status_code, headers=headers)


def error_page(err: ServiceError) -> HTMLResponse:
    title = {401: "Not allowed", 403: "Not allowed", 404: "Not found", 413: "Too large", 422: "Cannot be graded",
             429: "Too many submissions"}.get(err.status, "Something is wrong")
    return page("message.html.j2", err.status, err.headers, title=title, status=err.status, code=err.code,
                what=err.what, where=err.where, fix=err.fix)
