"""The pages a student sees: GET / to hand in, then the submission's page, which refreshes until the grade is in.

Without an LTI launch, GET / accepts uploads only when the server runs with
--open-uploads (anyone who can reach it may then hand in under any student id).
"""

from __future__ import annotations

from dataclasses import replace

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse
from starlette.concurrency import run_in_threadpool

from grader.report.audience import student_results
from grader.rubric.sheet import ScoreSheet
from grader.service.bodies import parse_form, read_body
from grader.service.errors import ServiceError
from grader.service.intake import from_form
from grader.service.lti.launch import Launch
from grader.service.pages import page

router = APIRouter(include_in_schema=False)

FILES = {"report.html": "text/html; charset=utf-8", "report.md": "text/markdown; charset=utf-8",
         "results.json": "application/json"}


async def upload_page(request: Request, launch: Launch | None = None, status: int = 200):
    service = request.app.state.service
    counts = await run_in_threadpool(service.store.counts)
    assignments = sorted(service.assignments, key=lambda a: a.id)
    fixed = None
    if launch is not None and launch.assignment:
        fixed = service.assignments.get(launch.assignment, where="the LMS link's custom parameter `assignment`")
    return page("upload.html.j2", status, action="/upload", assignments=assignments, fixed=fixed,
                student=launch.shown_name if launch else None,
                launch=service.launcher.session(launch) if launch else None, waiting=counts["queued"],
                max_bytes=service.settings.max_body_bytes)


def _closed() -> ServiceError:
    return ServiceError(403, "uploads_closed", "this server takes notebooks from course launches only",
                        where="/", fix="open the assignment from your course page in Canvas or Moodle")


@router.get("/")
async def home(request: Request):
    if not request.app.state.service.settings.open_uploads:
        raise _closed()
    return await upload_page(request)


@router.post("/upload")
async def upload(request: Request):
    service = request.app.state.service
    limit = service.settings.max_body_bytes
    form = await parse_form(request, await read_body(request, limit), limit)
    if form.get("launch"):
        launch = service.launcher.from_session(str(form["launch"]))
        handed_in = await from_form(form, student=launch.user_id)
        if launch.assignment:  # the LMS link names the assignment: the form cannot change it
            handed_in = replace(handed_in, assignment=launch.assignment)
        handed_in, source = replace(handed_in, callback_url=None, lti=launch.passback()), "lti"
    elif service.settings.open_uploads:
        handed_in, source = replace(await from_form(form), callback_url=None, lti=None), "page"
    else:
        raise _closed()
    job, _ = await run_in_threadpool(service.accept, handed_in, source=source)
    return RedirectResponse(f"/submissions/{job.id}", status_code=303)


async def _job(request: Request, job_id: str):
    service = request.app.state.service
    job = await run_in_threadpool(service.submission, job_id)
    if job is None:
        raise ServiceError(404, "unknown_job", f"no submission {job_id!r}", where="the address",
                           fix="use the link you were given after handing in")
    return service, job


@router.get("/submissions/{job_id}")
async def submission_page(request: Request, job_id: str):
    service, job = await _job(request, job_id)
    return page("submission.html.j2", job=await run_in_threadpool(service.describe, job))


@router.get("/submissions/{job_id}/{name}")
async def submission_file(request: Request, job_id: str, name: str):
    service, job = await _job(request, job_id)
    if name not in FILES:
        raise ServiceError(404, "unknown_file", f"no file {name!r} for a submission", where="the address",
                           fix="use one of: " + ", ".join(FILES))
    if job.status != "graded" or not job.report_dir:
        raise ServiceError(404, "not_graded", f"submission {job_id} is {job.status}, so it has no {name} yet",
                           where="the address", fix=f"wait for the grade: /submissions/{job_id} refreshes by itself")
    if name == "results.json":  # the student's copy: the Gradescope file keeps hidden items for Gradescope to hide
        return JSONResponse(student_results(ScoreSheet.model_validate(job.sheet),
                                            execution_time=(job.finished or 0) - (job.started or 0)))
    return FileResponse(service.settings.reports / job.report_dir / name, media_type=FILES[name])
