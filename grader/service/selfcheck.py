"""Self-checks: a student's notebook (or GitHub link) checked statically or by a dry run, for students whose own
machine cannot run the sandbox (Colab). Authorised by the assignment's self-check key or an LTI upload session,
rate-limited per key and address (or per LTI user), queued with the submissions, and never graded: no report, no
gradebook row, no callback, no passback; not a submission anywhere the instructor looks.

The contract (path, key header, depths) is `grader.selfcheck_remote`'s, the client students call.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Optional

from grader.links import LinkError, parse_link
from grader.report.audience import student_items, student_pass_rule, student_results
from grader.rubric.sheet import ScoreSheet
from grader.selfcheck_remote import DEPTHS, KEY_HEADER
from grader.service.assignments import Assignment, Assignments
from grader.service.errors import ServiceError
from grader.service.intake import SAVE_AS, check_notebook
from grader.service.lti.launch import Launcher
from grader.service.store import Job

STATUS = {"queued": "queued", "running": "running", "graded": "checked", "failed": "failed"}  # a check, not a grade


@dataclass(frozen=True)
class SelfCheck:
    """A self-check request, authorised: which assignment, how deep, what (notebook bytes or a link), and the
    rate-limit bucket it counts against."""

    assignment: str
    depth: str
    bucket: str
    notebook: Optional[bytes] = None
    link: Optional[str] = None


def _unprocessable(code: str, what: str, where: str, fix: str) -> ServiceError:
    return ServiceError(422, code, what, where=where, fix=fix)


def _text(form, name: str) -> Optional[str]:
    value = form.get(name)
    return value.strip() or None if isinstance(value, str) else None


def _depth(form, assignment: Assignment) -> str:
    depth = _text(form, "depth") or "dry-run"
    if depth not in DEPTHS:
        why = "the full run is the graded one" if depth == "full" else f"{depth!r} is no depth"
        raise _unprocessable("depth_not_offered", f"a self-check runs a static check or a dry run; {why}", "depth",
                             f"send depth={' or depth='.join(DEPTHS)}; for the full run, hand the notebook in "
                             "through your course")
    if depth == "dry-run" and assignment.mode != "execute":
        raise _unprocessable("depth_not_offered", f"assignment {assignment.id!r} is graded in {assignment.mode} "
                             "mode, without running the notebook: this server has no dry run for it", "depth",
                             "send depth=static")
    return depth


def _address_digest(address: str) -> str:
    """The caller's address, as a rate bucket: hashed, so that the store keeps no address."""
    return hashlib.sha256(address.encode()).hexdigest()[:16]


def authorise(form, key: Optional[str], address: str, assignments: Assignments, launcher: Launcher) -> tuple[
        Assignment, str]:
    """(the assignment, the rate bucket) for a request with the assignment's self-check key (the header) or an LTI
    upload session (the form field `launch`); refused with 401 or 403 saying which. The key is never echoed."""
    session = _text(form, "launch")
    if session is not None:
        launch = launcher.from_session(session)  # 401 lti_launch_refused when expired or forged
        named = launch.assignment or _text(form, "assignment")
        if not named:
            raise _unprocessable("invalid_submission", "assignment: missing", "assignment",
                                 "add the form field `assignment`")
        return assignments.get(named), f"lti:{launch.issuer}:{launch.user_id}"
    named = _text(form, "assignment")
    if not named:
        raise _unprocessable("invalid_submission", "assignment: missing", "assignment",
                             "add the form field `assignment` (the assignment id your course gave, e.g. mnist-s3)")
    assignment = assignments.get(named)
    if not key:
        raise ServiceError(401, "selfcheck_unauthenticated", "no self-check key and no LTI session", where=KEY_HEADER,
                           fix=f"send the self-check key your instructor gave for {assignment.id} "
                               f"(check(server=..., key=...)), or open the assignment from your course")
    if assignment.selfcheck_key is None:
        raise ServiceError(403, "selfcheck_closed", f"assignment {assignment.id!r} takes self-checks only from "
                           "course launches (LTI): it has no self-check key", where="assignment",
                           fix="open the assignment from your course page; instructor: give it a key in the file "
                               "of `grade serve --selfcheck-keys`")
    if not assignment.accepts(key):
        raise ServiceError(403, "selfcheck_key_refused", f"the self-check key is not the one of assignment "
                           f"{assignment.id!r}", where=KEY_HEADER,
                           fix="copy the key exactly as your instructor gave it for this assignment (keys are per "
                               "assignment)")
    return assignment, f"key:{assignment.id}:{_address_digest(address)}"


async def read_selfcheck(form, assignment: Assignment, bucket: str) -> SelfCheck:
    """The notebook (a file field) or the link (a text field), checked before anything is queued."""
    depth = _depth(form, assignment)
    link = _text(form, "link")
    notebook = form.get("notebook")
    data = None if notebook is None or notebook == "" else (
        notebook.encode() if isinstance(notebook, str) else await notebook.read())
    if link is not None and data:
        raise _unprocessable("invalid_submission", "both a notebook and a link were sent", "notebook, link",
                             "send one: the notebook file as `notebook`, or the GitHub link as `link`")
    if link is not None:
        try:
            parse_link(link)
        except LinkError as err:
            raise _unprocessable("invalid_link", f"the link cannot be checked: {err}", "link",
                                 "give a GitHub link: https://github.com/OWNER/REPO, .../tree/BRANCH/FOLDER or "
                                 ".../blob/BRANCH/NOTEBOOK.ipynb") from None
        return SelfCheck(assignment.id, depth, bucket, link=link)
    if not data:
        raise _unprocessable("missing_notebook", "no notebook and no link in the self-check", "notebook",
                             f"attach the .ipynb file as the form field `notebook` ({SAVE_AS}), or give `link`")
    check_notebook(data)
    return SelfCheck(assignment.id, depth, bucket, notebook=data)


def describe(job: Job, *, status_url: str, position: Optional[int]) -> dict:
    """GET /v1/selfcheck/{id}: where the check is; once checked, the student's results (no hidden item) with
    whether it passes so far; once failed, why."""
    state: dict[str, Any] = {"id": job.id, "status": STATUS[job.status], "depth": job.depth,
                             "assignment": job.assignment, "status_url": status_url, "queue_position": position}
    if job.status == "graded" and job.sheet is not None:
        sheet = ScoreSheet.model_validate(job.sheet)
        shown = student_items(sheet)
        ids = {item.id for item in shown}
        state.update(student_results(sheet, execution_time=round((job.finished or 0) - (job.started or 0), 2)),
                     passed=sheet.passed, max_score=sheet.max_score, pass_rule=student_pass_rule(sheet),
                     not_judged=[i for i in sheet.not_judged if i in ids],
                     items=[item.model_dump(mode="json") for item in shown])
    elif job.status == "failed":
        state["reason"] = job.reason
    return state
