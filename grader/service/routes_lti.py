"""LTI 1.3 endpoints: login initiation, launch, our JWKS, and a Canvas configuration for pasting."""

from __future__ import annotations

from typing import Optional

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse
from starlette.concurrency import run_in_threadpool

from grader.service.errors import ServiceError
from grader.service.lti.launch import SCORE_SCOPE, STATE_COOKIE, STATE_SECONDS
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
    if not launched.assignment:
        raise ServiceError(400, "lti_no_assignment", "this course link does not say which assignment it hands in to",
                           where="the LMS link's custom parameters",
                           fix="tell your instructor. Instructor: set the custom parameter assignment=<id> on this "
                               "link (Moodle: the activity's or the tool's Custom parameters; Canvas: the developer "
                               "key's Custom Fields, as /lti/canvas.json?assignment=<id> writes them). This server "
                               "grades: "
                               + ", ".join(sorted(a.id for a in service.assignments)))
    response = await upload_page(request, launched)
    response.headers.append("Set-Cookie", _state_cookie(STATE_COOKIE + state, "", 0))  # the state is used up
    return response


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
        "scopes": [SCORE_SCOPE, "https://purl.imsglobal.org/spec/lti-ags/scope/lineitem"],
        "extensions": [{"platform": "canvas.instructure.com", "privacy_level": "name_only",
                        "settings": {"placements": [{"placement": "assignment_selection",
                                                     "message_type": "LtiResourceLinkRequest",
                                                     "target_link_uri": service.url("/lti/launch")}]}}],
        "custom_fields": custom,
    }
