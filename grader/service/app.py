"""The FastAPI app: the routers, error rendering (JSON under /v1, pages elsewhere), workers started and
stopped with the server."""

from __future__ import annotations

from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from grader import __version__
from grader.service import routes_api, routes_lti, routes_pages
from grader.service.core import Service
from grader.service.errors import ServiceError
from grader.service.pages import error_page

DESCRIPTION = """\
Grades MNIST CNN notebooks for LMSs and course pages.

Submissions to `/v1` are signed: `X-Grader-Signature: sha256=<hex HMAC-SHA256(secret, X-Grader-Timestamp + "." +
raw body)>` with the shared secret and `X-Grader-Timestamp` (Unix seconds, at most 5 minutes old).
Errors are `{"error": {"status", "code", "what", "where", "fix"}}`.
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
    for module in (routes_api, routes_pages, routes_lti):
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

    return app
