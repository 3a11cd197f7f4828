"""LTI 1.3 endpoints: login initiation, launch (a student's upload page, an instructor's grade book, or the
deep-linking picker), the deep-linking return, our JWKS, and a Canvas configuration for pasting."""

from __future__ import annotations

from typing import Optional

import httpx
from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse
from starlette.concurrency import run_in_threadpool

from grader.service.errors import ServiceError
from grader.service.lti.deep_linking import response_token
from grader.service.lti.gradebook import rows
from grader.service.lti.launch import DEEP_LINKING, STATE_COOKIE, STATE_SECONDS, Launch
from grader.service.lti.nrps import Member, read_roster, roster_key
from grader.service.lti.tokens import LINEITEM_SCOPE, NRPS_SCOPE, SCORE_SCOPE
from grader.service.outbox import Permanent
from grader.service.pages import page
from grader.service.routes_pages import upload_page

router = APIRouter(tags=["LTI 1.3"])

def _state_cookie(name: str, value: str, max_age: int) -> str:
    """Sent back by the browser on the platform's cross-site form POST (SameSite=None, which needs Secure), inside
    the LMS's iframe (Partitioned: kept in the LMS's partition, where browsers still allow it), never to scripts.
    Written by hand: http.cookies knows Partitioned only from Python 3.14. Name and value are our own tokens."""
    return f"{name}={value}; Max-Age={max_age}; Path=/lti/; Secure; HttpOnly; SameSite=None; Partitioned"


@router.api_route("/lti/login", methods=["GET", "POST"], summary="OIDC third-party login initiation")
async def login(request: Request):
    params = dict(request.query_params)
    if request.method == "POST":
        params.update({k: v for k, v in (await request.form()).items() if isinstance(v, str)})
    service = request.app.state.service
    login = await run_in_threadpool(service.launcher.login, params)
    response = RedirectResponse(login.redirect, status_code=302)
    response.headers.append("Set-Cookie", _state_cookie(login.cookie, login.secret, STATE_SECONDS))
    return response


@router.post("/lti/launch", summary="The id_token POST: shows the upload page for the launching student")
async def launch(request: Request):
    form = await request.form()
    service = request.app.state.service
    id_token, state = (value if isinstance(value, str) else None for value in map(form.get, ("id_token", "state")))
    launched = await run_in_threadpool(service.launcher.launch, id_token, state, request.cookies)
    if launched.message_type == DEEP_LINKING:
        response = _picker(service, launched)
    elif launched.teaches:
        response = await _instructor_page(service, launched)
    else:
        response = await _student_page(request, launched)
    assert state is not None, "launch() refuses a POST without its state"
    response.headers.append("Set-Cookie", _state_cookie(STATE_COOKIE + state, "", 0))  # the state is used up
    return response


async def _student_page(request: Request, launched: Launch):
    service = request.app.state.service
    if not launched.assignment:
        raise ServiceError(400, "lti_no_assignment", "this course link does not say which assignment it hands in to",
                           where="the LMS link's custom parameters",
                           fix="tell your instructor. Instructor: set the custom parameter assignment=<id> on this "
                               "link (Moodle: the activity's or the tool's Custom parameters; Canvas: the developer "
                               "key's Custom Fields, as /lti/canvas.json?assignment=<id> writes them), or add the "
                               "link again through the LMS's content picker (deep linking), which sets it. This "
                               "server grades: "
                               + ", ".join(sorted(a.id for a in service.assignments)))
    return await upload_page(request, launched)


def _teacher(service, token: object, deep_linking: bool = False) -> Launch:
    """The launch an instructor's page carries on, signed by us; refused for a learner's or a forged one."""
    return _instructors_only(service.launcher.from_session(str(token or "")), deep_linking)


def _instructors_only(launch: Launch, deep_linking: bool = False) -> Launch:
    if not launch.teaches:
        raise ServiceError(403, "lti_not_instructor", "this page is for the course's instructors, and the launch "
                           "names no teaching role (Instructor, TeachingAssistant, ContentDeveloper, Administrator)",
                           where="roles", fix="open the tool from the course as an instructor")
    if deep_linking and launch.message_type != DEEP_LINKING:
        raise ServiceError(400, "lti_not_deep_linking", "this launch was not a deep-linking request, so there is "
                           "nowhere to return a choice to", where="message_type",
                           fix="add the tool to the course from the LMS's 'add content' / 'external tool' picker")
    return launch


def _picker(service, launched: Launch):
    _instructors_only(launched, deep_linking=True)
    assignments = [service.resource(a.id) for a in sorted(service.assignments, key=lambda a: a.id)]
    return page("deep_link.html.j2", assignments=assignments, launch=service.launcher.session(launched))


@router.post("/lti/deep-link", summary="Deep linking: the instructor's choice, returned to the LMS signed")
async def deep_link(request: Request):
    form = await request.form()
    service = request.app.state.service
    launched = _teacher(service, form.get("launch"), deep_linking=True)
    chosen = service.assignments.get(str(form.get("assignment") or ""), where="assignment")
    resource = service.resource(chosen.id)
    token = response_token(service.key, launched, resource, service.launcher.launch_url)
    assert launched.deep_link is not None, "_teacher(deep_linking=True) returns deep-linking launches only"
    return page("deep_link_return.html.j2", action=launched.deep_link["deep_link_return_url"], jwt=token,
                resource=resource)


@router.post("/lti/instructor", summary="The instructor's grade book of the launch's assignment (refresh)")
async def instructor(request: Request):
    form = await request.form()
    service = request.app.state.service
    return await _instructor_page(service, _teacher(service, form.get("launch")))


async def _instructor_page(service, launched: Launch):
    return page("instructor.html.j2", **await run_in_threadpool(_gradebook, service, launched),
                launch=service.launcher.session(launched), teacher=launched.shown_name)


def _gradebook(service, launched: Launch) -> dict:
    """The roster read afresh (the stored one when the LMS does not answer), the assignment's line item found
    or made, and each member's latest submission. What could not be done is said, not raised: the grades
    are still worth showing."""
    platform = service.registrations.find(launched.issuer, launched.client_id)
    notes: list[str] = []
    roster: list[Member] = []
    if launched.memberships:
        try:
            roster = read_roster(service.calls, service.store, platform, launched.memberships)
        except (Permanent, httpx.HTTPError) as exc:
            stored = service.store.get_record("roster", roster_key(platform, launched.memberships))
            roster = [Member(**m) for m in stored["members"]] if stored else []
            notes.append(f"The roster could not be read from {platform.label} ({exc}); "
                         + ("the one read before is shown." if stored else "names appear once it can be."))
    else:
        notes.append(f"{platform.label} did not send this launch a roster service (Names and Role Provisioning): "
                     f"enable the scope {NRPS_SCOPE} for this tool in the LMS to see names here.")
    assignment = service.resource(service.assignments.get(
        launched.assignment, where="the LMS link's custom parameter `assignment`").id) if launched.assignment else None
    column = launched.lineitem
    if assignment is None:
        notes.append("This link names no assignment: set the custom parameter assignment=<id> on it, or add the "
                     "tool again through deep linking, which sets it.")
    elif column is None and launched.lineitems:
        try:
            column = service.lineitems.find_or_create(platform, launched.lineitems, assignment,
                                                      launched.resource_link_id)
        except (Permanent, httpx.HTTPError) as exc:
            notes.append(f"The grade-book column could not be found or made ({exc}); scores are sent once it can.")
    elif column is None:
        notes.append(f"{platform.label} did not grant this link grade passback: enable the scopes {SCORE_SCOPE} "
                     f"and {LINEITEM_SCOPE} for this tool in the LMS.")
    latest = service.store.latest_submissions(assignment.id) if assignment else {}
    return {"assignment": assignment, "column": column, "rows": rows(roster, latest), "notes": notes}


@router.get("/.well-known/jwks.json", summary="This tool's public key (client assertions for grade passback)")
async def jwks(request: Request):
    return request.app.state.service.key.jwks()


@router.get("/lti/canvas.json", summary="Canvas developer key configuration (paste JSON or enter this URL)")
async def canvas_config(request: Request, assignment: Optional[str] = None):
    """`?assignment=<id>` writes the custom field that fixes the assignment of every link of this key; without it,
    each link must set it."""
    service = request.app.state.service
    custom = {"assignment": service.assignments.get(assignment, where="?assignment=").id} if assignment else {}
    return {
        "title": "mnist-grader",
        "description": "Hand in a notebook; it is graded against the assignment's rubric and the score returns.",
        "oidc_initiation_url": service.url("/lti/login"),
        "target_link_uri": service.url("/lti/launch"),
        "public_jwk_url": service.url("/.well-known/jwks.json"),
        "scopes": [SCORE_SCOPE, LINEITEM_SCOPE, NRPS_SCOPE],
        "extensions": [{"platform": "canvas.instructure.com", "privacy_level": "name_only",
                        "settings": {"placements": [{"placement": placement, "message_type": "LtiDeepLinkingRequest",
                                                     "target_link_uri": service.url("/lti/launch")}
                                                    for placement in ("assignment_selection", "link_selection")]}}],
        "custom_fields": custom,
    }
