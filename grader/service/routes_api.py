"""The /v1 API for LMSs and scripts: signed submissions, job status, health and metrics."""

from __future__ import annotations

import hashlib
from typing import Optional

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from grader import __version__
from grader.service.bodies import parse_form, read_body
from grader.service.errors import ServiceError
from grader.service.intake import SubmissionIn, from_form, from_json
from grader.service.signing import DELIVERY, HOW, SIGNATURE, TIMESTAMP, check_headers

router = APIRouter()


class Accepted(BaseModel):
    id: str
    status_url: str


def error_doc(description: str) -> dict:
    return {"description": description, "content": {"application/json": {"example": {"error": {
        "status": 0, "code": "...", "what": "what is wrong", "where": "the field or header", "fix": "what to do"}}}}}


def _inline(schema: dict) -> dict:
    """A pydantic JSON schema with its $defs inlined: the request body sits inside the OpenAPI document,
    where `#/$defs/...` would not resolve."""
    defs = schema.pop("$defs", {})

    def walk(node):
        if isinstance(node, dict):
            ref = node.get("$ref", "")
            if ref.startswith("#/$defs/"):
                return walk(defs[ref.removeprefix("#/$defs/")])
            return {key: walk(value) for key, value in node.items()}
        return [walk(item) for item in node] if isinstance(node, list) else node
    return walk(schema)


MULTIPART = {"type": "object", "required": ["student_id", "assignment", "notebook"], "properties": {
    "student_id": {"type": "string"}, "assignment": {"type": "string"},
    "notebook": {"type": "string", "format": "binary"}, "model": {"type": "string", "format": "binary"},
    "callback_url": {"type": "string"}}}

SIGNED = {"parameters": [
    {"name": SIGNATURE, "in": "header", "required": True, "schema": {"type": "string"}, "description": HOW},
    {"name": TIMESTAMP, "in": "header", "required": True, "schema": {"type": "string"},
     "description": "Unix time (seconds) of signing; older than 5 minutes is refused"}]}


def _status_url(request: Request, job_id: str) -> str:
    return request.app.state.service.url(f"/v1/submissions/{job_id}")


@router.post(
    "/v1/submissions", status_code=202, response_model=Accepted, tags=["submissions"],
    summary="Submit a notebook to grade",
    description="A JSON body (`notebook` and `model` as base64) or a multipart upload with the same field names "
                "(`notebook` and `model` as files). The job is stored before the 202. "
                f"Idempotent by `{DELIVERY}`: the same delivery sent again answers with the same job.",
    openapi_extra={
        **SIGNED,
        "requestBody": {"required": True, "content": {
            "application/json": {"schema": _inline(SubmissionIn.model_json_schema())},
            "multipart/form-data": {"schema": MULTIPART}}},
    },
    responses={400: error_doc(f"no {DELIVERY} header"), 401: error_doc("unsigned, badly signed or stale"),
               404: error_doc("unknown assignment"), 409: error_doc("delivery id reused for another body"),
               413: error_doc("body over the size limit"), 415: error_doc("neither JSON nor multipart"),
               422: error_doc("invalid notebook or fields"), 429: error_doc("per-student and per-source rate limit"),
               503: error_doc("more uploads at once than --max-uploads; with Retry-After")})
async def submit(request: Request):
    service = request.app.state.service
    # Everything the headers can refuse is refused before a byte of the body is read.
    signed = check_headers(service.settings.secret, request.headers, request.method, request.url.path)
    delivery = request.headers.get(DELIVERY, "").strip()
    if not delivery:
        raise ServiceError(400, "missing_delivery", f"no {DELIVERY} header", where=DELIVERY,
                           fix="send a unique id per submission (a UUID) and the same id again when you retry it: "
                               "a retry then returns the first job instead of grading twice")
    kind = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
    if kind not in ("multipart/form-data", "application/json", ""):
        raise ServiceError(415, "unsupported_media_type", f"Content-Type {kind!r} is not accepted",
                           where="Content-Type",
                           fix="send application/json (notebook as base64) or multipart/form-data (notebook as a file)")
    body = await read_body(request, service.settings.max_body_bytes, signed=signed)
    signature = request.headers[SIGNATURE].strip()
    if kind == "multipart/form-data":
        upload = await from_form(await parse_form(request, body, service.settings.max_body_bytes))
    else:
        upload = from_json(body)
    job, created = await run_in_threadpool(service.accept, upload, source="api", delivery=delivery[:200],
                                           signature=signature, body_sha256=hashlib.sha256(body).hexdigest())
    status_url = _status_url(request, job.id)
    headers = {"Location": status_url}
    if not created:
        headers["X-Grader-Replayed"] = "true"
    return JSONResponse({"id": job.id, "status_url": status_url}, status_code=202, headers=headers)


@router.get("/v1/submissions/{job_id}", tags=["submissions"], summary="A job's status, score and score sheet",
            openapi_extra=SIGNED,
            responses={401: error_doc("unsigned, badly signed or stale"), 404: error_doc("no such job")})
async def status(request: Request, job_id: str):
    service = request.app.state.service
    signed = check_headers(service.settings.secret, request.headers, request.method, request.url.path)
    signed.verify()  # over an empty body: a GET's body, if any, is never read
    job = await run_in_threadpool(service.submission, job_id)
    if job is None:
        raise ServiceError(404, "unknown_job", f"no submission {job_id!r}", where="id",
                           fix="use the id (or the status_url) the 202 answer gave")
    return await run_in_threadpool(service.describe, job)


@router.post(
    "/v1/assignments/{assignment_id}/regrade", tags=["assignments"],
    summary="Re-grade an assignment after a rubric fix: re-score from stored facts, pass back what changed",
    description="The assignment's rubric is read again from its file; every graded submission is re-scored from "
                "the facts stored with its report (nothing runs) and its new score recorded. Only a score, maximum "
                "or pass that changed is sent again (callback, LTI grade passback), for each student's latest "
                "submission, through the outbox. Submissions whose facts were measured under other run settings "
                "are listed in `reruns` (not re-scored). Signed like every /v1 request, over an empty body.",
    openapi_extra=SIGNED,
    responses={401: error_doc("unsigned, badly signed or stale"), 404: error_doc("unknown assignment"),
               413: error_doc("body over the size limit"),
               422: error_doc("the rubric file no longer loads, or names another id")})
async def regrade(request: Request, assignment_id: str):
    service = request.app.state.service
    signed = check_headers(service.settings.secret, request.headers, request.method, request.url.path)
    await read_body(request, service.settings.max_body_bytes, signed=signed)  # signed over its bytes, then ignored
    return await run_in_threadpool(service.regrade, assignment_id)


@router.get("/v1/health", tags=["operations"], summary="Liveness: the store answers and workers run")
async def health(request: Request):
    service = request.app.state.service
    try:
        counts = await run_in_threadpool(service.store.counts)
        checks = await run_in_threadpool(lambda: service.store.counts(selfchecks=True))
    except Exception as exc:  # the database is unreadable: tell the load balancer
        return JSONResponse({"status": "error", "error": f"{exc.__class__.__name__}: {exc}"}, status_code=503)
    return {"status": "ok", "version": __version__, "workers": service.settings.workers, "jobs": counts,
            "selfchecks": checks,
            "assignments": sorted(a.id for a in service.assignments)}


@router.get("/v1/metrics", tags=["operations"], summary="Prometheus metrics",
            response_class=Response, responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}})
async def metrics(request: Request) -> Response:
    body: Optional[bytes] = await run_in_threadpool(request.app.state.service.metrics.render)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
