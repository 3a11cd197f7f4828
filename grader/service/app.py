"""The FastAPI app: the routers, error rendering (JSON under /v1, pages elsewhere), workers started and
stopped with the server."""

from __future__ import annotations

import logging
import uuid
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from grader import __version__
from grader.service import routes_api, routes_lti, routes_pages, routes_selfcheck
from grader.service.bodies import BodyReads
from grader.service.core import Service
from grader.service.errors import ServiceError
from grader.service.pages import error_page
from grader.service.security_headers import SecurityHeaders, frame_ancestors, security_headers
from grader.service.signing import HOW

log = logging.getLogger(__name__)

DESCRIPTION = f"""\
Grades MNIST CNN notebooks for LMSs and course pages.

Requests to `/v1/submissions` are signed: `{HOW}` with the shared secret and `X-Grader-Timestamp` (Unix seconds,
at most 5 minutes old); `path` is the URL path without the query string.
Errors are `{{"error": {{"status", "code", "what", "where", "fix"}}}}`.
"""


def _wants_json(request: Request) -> bool:
    """Machines call /v1 and fetch JSON documents; everything else is a page a person sees (also inside an LMS)."""
    path = request.url.path
    return path.startswith(("/v1/", "/.well-known/", "/docs", "/openapi")) or path.endswith(".json")


def create_app(service: Service) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI):
        await run_in_threadpool(service.start)
        yield
        await run_in_threadpool(service.stop)

    app = FastAPI(title="mnist-grader", version=__version__, description=DESCRIPTION, lifespan=lifespan,
                  docs_url="/docs", redoc_url=None)
    app.state.service = service
    app.state.body_reads = BodyReads(service.settings.max_body_reads)
    headers = security_headers(frame_ancestors(service.settings.frame_ancestors, service.registrations))
    app.add_middleware(SecurityHeaders, headers=headers)
    for module in (routes_api, routes_selfcheck, routes_pages, routes_lti):
        app.include_router(module.router)

    @app.exception_handler(ServiceError)
    async def service_error(request: Request, err: ServiceError):
        service.metrics.rejections.labels(err.code).inc()
        if _wants_json(request):
            return JSONResponse(err.body(), status_code=err.status, headers=err.headers)
        return error_page(err)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException):
        err = ServiceError(exc.status_code, "not_found" if exc.status_code == 404 else "http_error", str(exc.detail),
                           where=request.url.path, fix="see /docs for the routes this server has")
        return await service_error(request, err)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError):
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        return await service_error(request, ServiceError(422, "invalid_request", f"{where}: {first['msg']}",
                                                         where=where, fix="see /docs for this route's parameters"))

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception):
        """A bug of ours: the caller gets the error JSON (or page) with an id that finds the traceback in the log."""
        log_id = uuid.uuid4().hex[:12]
        log.error("internal error %s on %s %s", log_id, request.method, request.url.path, exc_info=exc)
        return await service_error(request, ServiceError(
            500, "internal_error", f"the server failed on this request (log id {log_id})", where=request.url.path,
            fix=f"this is a bug in the grader, not in your request: report it with the log id {log_id}",
            headers=headers))

    return app
