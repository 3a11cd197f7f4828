"""LTI 1.3 endpoints: login initiation, launch, our JWKS, and a Canvas configuration for pasting."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse
from starlette.concurrency import run_in_threadpool

from grader.service.lti.launch import SCORE_SCOPE
from grader.service.routes_pages import upload_page

router = APIRouter(tags=["LTI 1.3"])


@router.api_route("/lti/login", methods=["GET", "POST"], summary="OIDC third-party login initiation")
async def login(request: Request):
    params = dict(request.query_params)
    if request.method == "POST":
        params.update({k: v for k, v in (await request.form()).items() if isinstance(v, str)})
    service = request.app.state.service
    return RedirectResponse(await run_in_threadpool(service.launcher.login, params), status_code=302)


@router.post("/lti/launch", summary="The id_token POST: shows the upload page for the launching student")
async def launch(request: Request):
    form = await request.form()
    service = request.app.state.service
    launched = await run_in_threadpool(service.launcher.launch, form.get("id_token"), form.get("state"))
    return await upload_page(request, launched)


@router.get("/.well-known/jwks.json", summary="This tool's public key (client assertions for grade passback)")
async def jwks(request: Request):
    return request.app.state.service.key.jwks()


@router.get("/lti/canvas.json", summary="Canvas developer key configuration (paste JSON or enter this URL)")
async def canvas_config(request: Request):
    service = request.app.state.service
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
        "custom_fields": {"assignment": "mnist-s3"},
    }
