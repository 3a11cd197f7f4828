"""/v1/selfcheck: a student's static check or dry run, queued with the submissions and polled by its id; never a
grade (see grader.service.selfcheck)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from grader.selfcheck_remote import DEPTHS, KEY_HEADER, PATH
from grader.service.bodies import parse_form, read_body
from grader.service.errors import ServiceError
from grader.service.routes_api import error_doc
from grader.service.selfcheck import authorise, describe, read_selfcheck

router = APIRouter(tags=["self-check"])

FORM = {"type": "object", "required": ["assignment"], "properties": {
    "assignment": {"type": "string", "description": "the assignment (rubric) id"},
    "depth": {"type": "string", "enum": list(DEPTHS), "default": "dry-run"},
    "notebook": {"type": "string", "format": "binary", "description": "the .ipynb file (or send `link`)"},
    "link": {"type": "string", "description": "a GitHub link to the repository, folder or notebook"},
    "launch": {"type": "string", "description": "an LTI upload session, in place of the key"}}}
FORMS = ("multipart/form-data", "application/x-www-form-urlencoded")


def _state(request: Request, job) -> dict:
    service = request.app.state.service
    return describe(job, status_url=service.url(f"{PATH}/{job.id}"),
                    position=service.store.position(job) if job.status == "queued" else None)


@router.post(
    PATH, status_code=202, summary="Check a notebook (static or dry run); no grade is recorded",
    description=f"A form with the notebook as the file `notebook`, or a GitHub `link`; `depth` static or dry-run "
                f"(full is refused). Authorised by the assignment's self-check key in `{KEY_HEADER}`, or by an LTI "
                f"upload session in `launch`. Poll the `status_url` until `status` is `checked` or `failed`.",
    openapi_extra={"parameters": [{"name": KEY_HEADER, "in": "header", "required": False,
                                   "schema": {"type": "string"}, "description": "the assignment's self-check key"}],
                   "requestBody": {"required": True, "content": {kind: {"schema": FORM} for kind in FORMS}}},
    responses={401: error_doc("no key and no LTI session"), 403: error_doc("a wrong key, or none set"),
               404: error_doc("unknown assignment"), 413: error_doc("body over the size limit"),
               415: error_doc("not a form"), 422: error_doc("invalid notebook, link or depth"),
               429: error_doc("per key and address, or per LTI user"), 503: error_doc("too many uploads at once")})
async def selfcheck(request: Request):
    service = request.app.state.service
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind not in FORMS:
        raise ServiceError(415, "unsupported_media_type", f"Content-Type {kind or 'none'!r} is not accepted here",
                           where="Content-Type", fix="send multipart/form-data with the notebook as the file "
                                                     "`notebook` (or a form with `link`)")
    limit = service.settings.max_body_bytes
    form = await parse_form(request, await read_body(request, limit), limit)
    assignment, bucket = authorise(form, request.headers.get(KEY_HEADER), request.client.host if request.client
                                   else "", service.assignments, service.launcher)
    check = await read_selfcheck(form, assignment, bucket)
    job = await run_in_threadpool(service.accept_selfcheck, check)
    state = await run_in_threadpool(_state, request, job)
    return JSONResponse(state, status_code=202, headers={"Location": state["status_url"]})


@router.get(PATH + "/{check_id}", summary="A self-check's state; once checked, the student's results",
            responses={404: error_doc("no such self-check")})
async def selfcheck_state(request: Request, check_id: str):
    service = request.app.state.service
    job = await run_in_threadpool(service.store.get, check_id)
    if job is None or not job.selfcheck:
        raise ServiceError(404, "unknown_job", f"no self-check {check_id!r}", where="id",
                           fix="use the id (or the status_url) the 202 answer gave")
    return await run_in_threadpool(_state, request, job)
