"""LTI 1.3 against a platform stand-in on loopback: launches (valid, tampered, expired, wrong audience,
replayed nonce, ...) and grade passback through AGS, as Canvas and Moodle do them."""

from __future__ import annotations

import html
import re
import time
from datetime import datetime

import jwt

from tests.fixtures.service.harness import ADA, notebook_bytes
from tests.fixtures.service.lti_tool import fresh_knobs, platform, server  # noqa: F401 (pytest fixtures)
from tests.fixtures.service.platform import CLAIM, SCORE_SCOPE, hidden


def _refused(response, says: str, where: str) -> None:
    assert response.status_code == 401, response.text
    text = html.unescape(response.text)
    assert says in text and f"<code>{where}</code>" in text and "What to do" in text


def test_a_valid_launch_shows_the_upload_page_for_the_student(platform, server):
    page = platform.launch(server.http, "ann")
    assert page.status_code == 200, page.text
    assert "Hand in your notebook" in page.text and "Signed in from your course as <strong>Ann</strong>" in page.text
    assert 'name="assignment" value="svc-static"' in page.text  # fixed by the link's custom parameter
    assert 'name="student_id"' not in page.text and hidden(page.text, "launch")
    assert "<script" not in page.text.lower()


def test_the_login_redirects_to_the_platform_with_state_and_nonce(platform, server):
    login = server.http.get("/lti/login", params=platform.login_params("ann"))
    assert login.status_code == 302
    location = login.headers["location"]
    assert location.startswith(f"{platform.url}/auth?")
    for part in ("response_type=id_token", "response_mode=form_post", "scope=openid", "prompt=none", "state=",
                 "nonce=", f"client_id={platform.client_id}", "lti_message_hint=resource-link-7"):
        assert part in location


def test_a_tampered_id_token_is_refused(platform, server):
    platform.tamper_next = True
    _refused(platform.launch(server.http), "signature does not verify", "signature")


def test_an_expired_id_token_is_refused(platform, server):
    now = int(time.time())
    platform.next_claims = {"iat": now - 900, "exp": now - 600}
    _refused(platform.launch(server.http), "has expired", "exp")


def test_an_id_token_for_another_audience_is_refused(platform, server):
    platform.next_claims = {"aud": "some-other-tool"}
    _refused(platform.launch(server.http), "not addressed to this tool", "aud")


def test_a_replayed_nonce_is_refused(platform, server):
    id_token, state, cookie = platform.authenticate(server.http, "ann")
    form, headers = {"id_token": id_token, "state": state}, {"Cookie": cookie}
    assert server.http.post("/lti/launch", data=form, headers=headers).status_code == 200
    _refused(server.http.post("/lti/launch", data=form, headers=headers), "is a replay", "nonce")


def test_an_unregistered_deployment_is_refused(platform, server):
    platform.next_claims = {CLAIM + "deployment_id": "deployment-2"}
    _refused(platform.launch(server.http), "deployment 'deployment-2'", "deployment_id")


def test_a_launch_with_an_unknown_state_is_refused(platform, server):
    id_token, _, _ = platform.authenticate(server.http, "ann")
    _refused(server.http.post("/lti/launch", data={"id_token": id_token, "state": "made-up"}), "state is unknown",
             "state")


def test_a_login_from_an_unregistered_issuer_says_how_to_register(platform, server):
    response = server.http.get("/lti/login", params={**platform.login_params("ann"), "iss": "https://lms.example"})
    assert response.status_code == 400 and "is not registered on this tool" in response.text
    assert "--lti" in response.text


def test_an_upload_page_cannot_be_forged(server):
    response = server.http.post("/upload", data={"launch": "not-a-token", "assignment": "svc-static"},
                                files={"notebook": ("n.ipynb", notebook_bytes())})
    _refused(response, "launch is not valid", "launch")


def test_without_open_uploads_the_home_page_sends_students_to_their_course(server):
    response = server.http.get("/")
    assert response.status_code == 403 and "from your course page" in response.text


def test_the_grade_of_a_launch_reaches_the_platform_with_every_field(platform, server):
    before = len(platform.scores)
    page = platform.launch(server.http, "bea")
    handed_in = server.http.post("/upload", data={"launch": hidden(page.text, "launch"), "assignment": "other"},
                                 files={"notebook": ("notebook.ipynb", notebook_bytes(ADA))})
    assert handed_in.status_code == 303, handed_in.text
    job = handed_in.headers["location"].rsplit("/", 1)[1]
    state = server.wait(job)
    assert (state["student_id"], state["assignment"], state["score"]) == ("user-bea", "svc-static", 15)
    score = platform.wait_scores(before + 1)[-1]
    assert score["path"] == "/api/lti/courses/1/line_items/7/lineitem/scores" and score["query"] == "type_id=1"
    assert score["content_type"] == "application/vnd.ims.lis.v1.score+json"
    body = score["body"]
    assert {k: body[k] for k in ("userId", "scoreGiven", "scoreMaximum", "activityProgress", "gradingProgress")} == {
        "userId": "user-bea", "scoreGiven": 15, "scoreMaximum": 15, "activityProgress": "Completed",
        "gradingProgress": "FullyGraded"}
    assert datetime.fromisoformat(body["timestamp"]).tzinfo is not None
    assert "15 / 15 points on svc-static" in body["comment"] and f"/submissions/{job}" in body["comment"]
    assert platform.token_requests and all(r["ok"] for r in platform.token_requests), platform.token_requests
    assert server.wait(job)["lti_passback"]["state"] in ("sending", "sent")


def test_our_jwks_and_canvas_configuration(platform, server):
    keys = server.http.get("/.well-known/jwks.json").json()["keys"]
    assert len(keys) == 1 and keys[0]["kty"] == "RSA" and keys[0]["alg"] == "RS256" and keys[0]["kid"]
    jwt.PyJWK(keys[0])  # a usable public key
    assert "d" not in keys[0]  # and only the public half
    canvas = server.http.get("/lti/canvas.json").json()
    assert canvas["oidc_initiation_url"] == f"{server.url}/lti/login"
    assert canvas["target_link_uri"] == f"{server.url}/lti/launch" and SCORE_SCOPE in canvas["scopes"]
    assert re.fullmatch(rf"{re.escape(server.url)}/\.well-known/jwks\.json", canvas["public_jwk_url"])


def test_a_login_without_its_parameters_says_which_are_missing(server):
    response = server.http.get("/lti/login", params={"iss": "x"})
    text = html.unescape(response.text)
    assert response.status_code == 400 and "lacks login_hint, target_link_uri" in text and "from the LMS" in text


def test_a_login_for_another_tools_link_is_refused(platform, server):
    params = {**platform.login_params("ann"), "target_link_uri": "https://elsewhere.example/launch"}
    text = html.unescape(server.http.get("/lti/login", params=params).text)
    assert "is not on this tool" in text and "--public-url" in text
