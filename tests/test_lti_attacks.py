"""Attacks on the LTI side of `grade serve`, against the real server on loopback and the platform stand-in:
a login CSRF, line items on a foreign host (from a launch, from a request body, from a job stored by an older
server), the student choosing the rubric, Canvas's configuration, and malformed claims."""

from __future__ import annotations

import html
import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from pydantic import ValidationError

from grader.service.lti.config import Platform as Registration
from grader.service.store import NewJob, SQLiteStore
from tests.fixtures.service.harness import notebook_bytes, start_server, submission
from tests.fixtures.service.lti_tool import fresh_knobs, platform, server  # noqa: F401 (pytest fixtures)
from tests.fixtures.service.platform import AGS, CLAIM, SCORE_SCOPE, Platform, hidden


class Foreign:
    """A host that is not the platform's, on loopback: it records every request that reaches it."""

    def __init__(self):
        self.requests: list[tuple[str, str, dict]] = []
        foreign = self

        class Handler(BaseHTTPRequestHandler):
            def _record(self):
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                foreign.requests.append((self.command, self.path, dict(self.headers)))
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            do_GET = do_POST = do_PUT = _record

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.lineitem = f"{self.url}/api/lti/courses/1/line_items/7/lineitem"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def foreign():
    host = Foreign()
    yield host
    host.close()




def _page_error(response: httpx.Response, status: int, says: str, where: str, fix: str) -> None:
    assert response.status_code == status, response.text
    text = html.unescape(response.text)
    assert says in text and f"<code>{where}</code>" in text and fix in text, text


def _nothing_reached(foreign: Foreign, platform: Platform, tokens_before: int) -> None:
    assert foreign.requests == [], foreign.requests
    assert len(platform.token_requests) == tokens_before, "a token was asked for: it could have been sent on"


# login CSRF: the launch is bound to the browser that started the login


def test_the_login_sets_a_state_cookie_fit_for_an_lms_iframe(platform, server):
    login = server.http.get("/lti/login", params=platform.login_params("ann"))
    assert login.status_code == 302
    [cookie] = login.headers.get_list("set-cookie")
    state = dict(p.split("=", 1) for p in login.headers["location"].split("?", 1)[1].split("&"))["state"]
    name, attributes = cookie.split("=", 1)[0], {a.strip().lower() for a in cookie.split(";")[1:]}
    assert name == f"lti-state-{state}"
    assert {"secure", "httponly", "samesite=none", "partitioned", "path=/lti/", "max-age=600"} <= attributes


def test_a_login_csrf_is_refused_end_to_end(platform, server):
    # The attacker starts a launch in their own browser and stops before the id_token POST.
    attacker_token, attacker_state, attacker_cookie = platform.authenticate(server.http, "mallory")
    # The victim's browser, which has started a launch of its own, is made to POST the attacker's pair.
    _, _, victim_cookie = platform.authenticate(server.http, "victim")
    for cookie in ("", victim_cookie, f"lti-state-{attacker_state}=guessed"):
        forged = httpx.post(f"{server.url}/lti/launch", data={"id_token": attacker_token, "state": attacker_state},
                            headers={"Cookie": cookie} if cookie else {}, trust_env=False)
        _page_error(forged, 401, "this browser did not start this launch", "state cookie",
                    "open the assignment from your course page again, in this browser")
        assert "Hand in your notebook" not in forged.text and "Mallory" not in forged.text
    # The same pair from the attacker's own browser, which holds the cookie, is a launch.
    own = server.http.post("/lti/launch", data={"id_token": attacker_token, "state": attacker_state},
                           headers={"Cookie": attacker_cookie})
    assert own.status_code == 200 and "Signed in from your course as <strong>Mallory</strong>" in own.text
    assert f"lti-state-{attacker_state}=; Max-Age=0" in own.headers["set-cookie"]  # used up


# AGS: the token goes only to the platform's own hosts


@pytest.mark.parametrize("where", ["foreign", "userinfo"])
def test_a_launch_with_a_line_item_on_a_foreign_host_is_refused(platform, server, foreign, where):
    lineitem = foreign.lineitem if where == "foreign" else \
        foreign.lineitem.replace("http://", f"http://{platform.url.removeprefix('http://')}@")
    tokens = len(platform.token_requests)
    platform.next_claims = {AGS: {"scope": [SCORE_SCOPE], "lineitem": lineitem}}
    _page_error(platform.launch(server.http), 400, "is not on Stand-in LMS's own hosts", "lineitem",
                "add its origin to ags_origins")
    _nothing_reached(foreign, platform, tokens)


def test_a_request_body_cannot_name_a_line_item(platform, server, foreign):
    tokens, jobs = len(platform.token_requests), sum(server.jobs().values())
    lti = {"lineitem": foreign.lineitem, "user_id": "user-eve", "issuer": platform.issuer}
    answer = server.submit(submission(f"eve-{uuid.uuid4().hex[:6]}", lti=lti))
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert (error["code"], error["where"]) == ("invalid_submission", "lti") and "leave `lti` out" in error["fix"]
    request = httpx.Request("POST", f"{server.url}/v1/submissions", files={"notebook": ("n.ipynb", notebook_bytes())},
                            data={"student_id": "eve", "assignment": "svc-static", "lti": json.dumps(lti)})
    body = request.read()
    multipart = server.signed("POST", "/v1/submissions", body, delivery=uuid.uuid4().hex,
                              headers={"Content-Type": request.headers["content-type"]})
    assert multipart.status_code == 422 and multipart.json()["error"]["where"] == "lti", multipart.text
    assert sum(server.jobs().values()) == jobs  # nothing was queued
    _nothing_reached(foreign, platform, tokens)


def test_a_stored_job_with_a_foreign_line_item_gets_no_token(platform, foreign, tmp_path):
    """A job an older server accepted from a request body: its passback is refused before any token is asked."""
    store = SQLiteStore(tmp_path / "grader.db")
    job, _ = store.submit(NewJob(student="eve", assignment="svc-static", source="api", notebook=notebook_bytes(),
                                 lti={"issuer": platform.issuer, "client_id": platform.client_id,
                                      "lineitem": foreign.lineitem, "user_id": "user-eve"}))
    store.close()
    (tmp_path / "platforms.yaml").write_text(platform.registration())
    tokens, tool_url = len(platform.token_requests), platform.tool_url
    with start_server(tmp_path, "--lti", str(tmp_path / "platforms.yaml")) as server:
        platform.tool_url = server.url  # the platform would grant this server a token: none must be asked for
        assert server.wait(job.id)["status"] == "graded"
        deadline = time.monotonic() + 30
        while (passback := server.status(job.id)["lti_passback"])["state"] not in ("sent", "failed"):
            assert time.monotonic() < deadline, passback
            time.sleep(0.2)
    platform.tool_url = tool_url
    assert passback["state"] == "failed", passback
    assert "is not on Stand-in LMS's own hosts" in passback["error"] and "no token was asked for" in passback["error"]
    _nothing_reached(foreign, platform, tokens)


def test_ags_origins_name_the_hosts_beyond_the_registered_urls():
    registration = Registration(issuer="https://canvas.instructure.com", client_id="1",
                                auth_login_url="https://sso.canvaslms.com/api/lti/authorize_redirect",
                                auth_token_url="https://sso.canvaslms.com/login/oauth2/token",
                                key_set_url="https://sso.canvaslms.com/api/lti/security/jwks",
                                deployment_ids=["1:abc"], ags_origins=["https://school.instructure.com"])
    assert registration.serves("https://school.instructure.com/api/lti/courses/1/line_items/2")
    assert registration.serves("https://SCHOOL.instructure.com:443/api/lti/courses/1/line_items/2")
    for elsewhere in ("https://school.instructure.com.evil.example/x", "http://school.instructure.com/x",
                      "https://school.instructure.com:8443/x", "https://school.instructure.com\\@evil.example/x",
                      "https://evil.example/school.instructure.com", "javascript:alert(1)"):
        assert not registration.serves(elsewhere), elsewhere
    with pytest.raises(ValidationError, match="origin is scheme and host only"):
        Registration(**{**registration.model_dump(), "ags_origins": ["https://school.instructure.com/api"]})


# the assignment comes from the link


def test_the_assignment_is_the_links_custom_parameter(platform, server):
    page = platform.launch(server.http, "ann")
    assert page.status_code == 200 and "<select" not in page.text
    assert 'name="assignment" value="svc-static"' in page.text
    handed_in = server.http.post("/upload", data={"launch": hidden(page.text, "launch"),
                                                  "assignment": "svc-evaluate"},
                                 files={"notebook": ("notebook.ipynb", notebook_bytes())})
    assert handed_in.status_code == 303, handed_in.text
    assert server.status(handed_in.headers["location"].rsplit("/", 1)[1])["assignment"] == "svc-static"


def test_a_link_without_an_assignment_tells_the_instructor_to_set_it(platform, server):
    platform.assignment = None
    response = platform.launch(server.http)
    _page_error(response, 400, "this course link does not say which assignment", "the LMS link's custom parameters",
                "Instructor: set the custom parameter assignment=<id> on this link")
    assert "This server grades: svc-evaluate, svc-static" in html.unescape(response.text)
    assert "<select" not in response.text


def test_a_link_with_an_unknown_assignment_says_which_exist(platform, server):
    platform.assignment = "mnist-s3"
    _page_error(platform.launch(server.http), 404, "no assignment 'mnist-s3'",
                "the LMS link's custom parameter `assignment`", "svc-evaluate, svc-static")


def test_canvas_json_has_no_assignment_unless_asked(server):
    assert server.http.get("/lti/canvas.json").json()["custom_fields"] == {}
    fixed = server.http.get("/lti/canvas.json", params={"assignment": "svc-static"}).json()
    assert fixed["custom_fields"] == {"assignment": "svc-static"}
    unknown = server.http.get("/lti/canvas.json", params={"assignment": "mnist-s3"})
    assert unknown.status_code == 404 and "svc-evaluate, svc-static" in html.unescape(unknown.text)


# malformed claims get a 4xx that says what is wrong


@pytest.mark.parametrize("claims, where", [
    ({AGS: "https://lms.example/lineitem"}, AGS),
    ({AGS: {"scope": SCORE_SCOPE, "lineitem": "x"}}, AGS),
    ({AGS: {"scope": [SCORE_SCOPE], "lineitem": ["x"]}}, AGS),
    ({CLAIM + "custom": "assignment=svc-static"}, "custom"),
])
def test_a_malformed_claim_is_a_4xx(platform, server, claims, where):
    platform.next_claims = claims
    response = platform.launch(server.http)
    _page_error(response, 400, "not", where, "the LMS must send")
