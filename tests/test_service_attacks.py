"""Attacks on `grade serve`, one test each, against the real server (uvicorn on 127.0.0.1, a subprocess).

Each test is named after what the attacker tries; each checks the answer (a 4xx with the error JSON that says
what, where and what to do) and, where it matters, that the server did no work for it: an unsigned body is
refused before it is read, a forged one is read a few at a time, a captured signed GET opens nothing else.
"""

from __future__ import annotations

import base64
import http.client
import json
import re
import time
import uuid
from urllib.parse import urlsplit

import httpx
import pytest

from grader.service.lti.config import Registrations
from grader.service.security_headers import frame_ancestors
from grader.service.signing import SIGNATURE, TIMESTAMP, signed_headers
from tests.fixtures.service.flood import measure
from tests.fixtures.service.harness import notebook_bytes, start_server, submission

MAX_UPLOADS = 2
MB = 1 << 20


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with start_server(tmp_path_factory.mktemp("attacks"), "--open-uploads", "--rate", "2/60",
                      "--max-uploads", str(MAX_UPLOADS)) as running:
        yield running


def student() -> str:
    return f"a-{uuid.uuid4().hex[:10]}"


def _error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["status"] == status and error["code"] == code and error["what"] and error["fix"], error
    return error


def _forged(path: str = "/v1/submissions") -> dict:
    """Headers that pass every check the headers allow: fresh, well-formed, and wrong."""
    return {TIMESTAMP: str(int(time.time())), SIGNATURE: "sha256=" + "0" * 64, "X-Grader-Delivery": uuid.uuid4().hex,
            "Content-Type": "application/json"}


def _headers_only(server, headers: dict, length: int) -> http.client.HTTPConnection:
    """A POST that announces `length` bytes of body and sends none of them (yet)."""
    address = urlsplit(server.url)
    conn = http.client.HTTPConnection(address.hostname, address.port, timeout=10)
    conn.putrequest("POST", "/v1/submissions")
    for name, value in {**headers, "Content-Length": str(length)}.items():
        conn.putheader(name, value)
    conn.endheaders()
    return conn


def _answer(conn: http.client.HTTPConnection) -> tuple[int, dict, dict]:
    response = conn.getresponse()
    return response.status, dict(response.getheaders()), json.loads(response.read())


# signature before body


@pytest.mark.parametrize("case, headers, says", [
    ("unsigned", {}, "not signed"),
    ("signature not hex", {SIGNATURE: "sha256=zz", TIMESTAMP: "1767225600"}, "is not sha256="),
    ("stale", {SIGNATURE: "sha256=" + "0" * 64, TIMESTAMP: str(int(time.time()) - 3600)}, "s old"),
])
def test_a_16_mb_body_with_bad_headers_is_refused_before_a_byte_of_it_is_sent(server, case, headers, says):
    conn = _headers_only(server, {**headers, "Content-Type": "application/json"}, 16 * MB)
    status, _, body = _answer(conn)  # answered while the 16 MB are still unsent
    conn.close()
    assert status == 401 and body["error"]["code"] == "unauthenticated" and says in body["error"]["what"]
    assert "HMAC-SHA256" in body["error"]["fix"] or "clock" in body["error"]["fix"]


def test_a_forged_signature_is_refused_after_the_body_is_hashed(server):
    before = server.jobs()
    body = json.dumps(submission(student())).encode()
    error = _error(server.http.post("/v1/submissions", content=body, headers=_forged()), 401, "unauthenticated")
    assert "does not match" in error["what"] and "method and path" in error["fix"]
    assert server.jobs() == before


def test_more_uploads_at_once_than_the_server_reads_get_503_with_retry_after(server):
    holders = [_headers_only(server, _forged(), 4 * MB) for _ in range(MAX_UPLOADS)]
    for conn in holders:
        conn.send(b"{" * 1000)  # a body in progress holds its slot
    time.sleep(0.5)
    try:
        response = server.http.post("/v1/submissions", content=b"{}", headers=_forged())
        error = _error(response, 503, "busy")
        assert response.headers["retry-after"] == "5" and "Retry-After" in error["fix"]
    finally:
        for conn in holders:
            conn.close()
    time.sleep(0.5)  # the slots are free again once those connections are gone
    assert server.submit(submission(student())).status_code == 202


# signed GETs name their submission


def test_a_captured_signed_get_does_not_open_another_submission(server):
    job = server.submit(submission(student())).json()["id"]
    other = server.submit(submission(student())).json()["id"]
    captured = signed_headers(server.secret, "GET", f"/v1/submissions/{job}", b"")
    assert server.http.get(f"/v1/submissions/{job}", headers=captured).status_code == 200
    error = _error(server.http.get(f"/v1/submissions/{other}", headers=captured), 401, "unauthenticated")
    assert "does not match" in error["what"]
    as_post = server.http.post(f"/v1/submissions/{job}", headers=captured)
    assert as_post.status_code in (401, 405)  # no POST route there, and never a status for it


# malformed input: a 4xx with the error JSON, never a 500


def test_deeply_nested_json_is_422_not_a_recursion_error(server):
    deep = b"[" * 200_000 + b"]" * 200_000
    error = _error(server.signed("POST", "/v1/submissions", deep, delivery=uuid.uuid4().hex,
                                 headers={"Content-Type": "application/json"}), 422, "invalid_json")
    assert "too deeply" in error["what"] and error["where"] == "body"
    nested_notebook = submission(student(), notebook=base64.b64encode(deep).decode())
    error = _error(server.submit(nested_notebook), 422, "invalid_notebook")
    assert "too deeply" in error["what"] and error["where"] == "notebook" and ".ipynb" in error["fix"]


def _multipart(data: dict, files: dict, url: str) -> tuple[bytes, str]:
    request = httpx.Request("POST", url, data=data, files=files)
    return request.read(), request.headers["content-type"]


def test_a_text_field_sent_as_a_file_is_422_through_the_api_and_the_upload_page(server):
    fields = {"assignment": "svc-static"}
    files = {"student_id": ("id.txt", student().encode()), "notebook": ("n.ipynb", notebook_bytes())}
    body, kind = _multipart(fields, files, f"{server.url}/v1/submissions")
    error = _error(server.signed("POST", "/v1/submissions", body, delivery=uuid.uuid4().hex,
                                 headers={"Content-Type": kind}), 422, "field_not_text")
    assert "`student_id` was sent as a file" in error["what"] and error["where"] == "student_id"
    page = server.http.post("/upload", content=body, headers={"Content-Type": kind})
    assert page.status_code == 422 and "text/html" in page.headers["content-type"]
    assert "was sent as a file" in page.text and "plain form field" in page.text


def test_a_server_bug_answers_with_the_error_page_and_a_log_id(server):
    """Outside /v1 a fault answers with the error page (the same fields as the error JSON), its log id in it."""
    who = student()
    job = server.submit(submission(who)).json()["id"]
    assert server.wait(job)["status"] == "graded"
    written = [path for path in (server.workdir / "grader-reports").rglob("report.md") if who in str(path)]
    assert written
    for path in written:
        path.unlink()  # the report vanished from disk: the route meets a state it did not expect
    response = server.http.get(f"/submissions/{job}/report.md")
    assert response.status_code == 500 and response.headers["content-type"].startswith("text/html")
    assert 'data-code="internal_error"' in response.text
    log_id = re.search(r"log id ([0-9a-f]+)\)", response.text)[1]
    assert f"report it with the log id {log_id}" in response.text and "bug in the grader" in response.text
    assert response.headers["x-content-type-options"] == "nosniff"  # a 500 too
    logged = server.log.read_text(errors="replace")
    assert f"internal error {log_id}" in logged and "Traceback" in logged.split(log_id, 1)[1]  # found by the id


# headers and limits


def test_every_answer_carries_headers_fit_for_an_lms_iframe(server):
    for response in (server.http.get("/"), server.http.get("/v1/health"),
                     server.http.post("/v1/submissions", json={})):  # a page, JSON, and an error
        policy = response.headers["content-security-policy"]
        assert "frame-ancestors 'self'" in policy  # no platform registered: only ourselves may frame us
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["referrer-policy"] == "no-referrer"


def test_frame_ancestors_default_to_the_registered_platforms_and_can_be_given(tmp_path):
    platforms = Registrations.model_validate({"platforms": [{
        "issuer": "https://canvas.test.instructure.com", "client_id": "1",
        "auth_login_url": "https://sso.test.canvaslms.com/api/lti/authorize_redirect",
        "auth_token_url": "https://sso.test.canvaslms.com/login/oauth2/token",
        "key_set_url": "https://sso.test.canvaslms.com/api/lti/security/jwks", "deployment_ids": ["1"]}]})
    # ourselves first: the submission page frames its own report
    assert frame_ancestors((), platforms) == ["'self'", "https://canvas.test.instructure.com",
                                              "https://sso.test.canvaslms.com"]
    with start_server(tmp_path, "--frame-ancestors", "https://school.instructure.com/courses/1",
                      "https://moodle.example.edu") as given:
        policy = given.http.get("/v1/health").headers["content-security-policy"]
    assert "frame-ancestors 'self' https://school.instructure.com https://moodle.example.edu;" in policy


def test_the_upload_page_and_the_lms_do_not_share_a_rate_bucket(server):
    who = student()

    def via_api(n: int):
        return server.submit(submission(who, notebook=base64.b64encode(notebook_bytes() + b" " * n).decode()))
    assert [via_api(n).status_code for n in range(2)] == [202, 202]
    error = _error(via_api(2), 429, "rate_limited")
    assert "through api" in error["what"]
    body, kind = _multipart({"student_id": who, "assignment": "svc-static"},
                            {"notebook": ("n.ipynb", notebook_bytes())}, f"{server.url}/upload")
    page = server.http.post("/upload", content=body, headers={"Content-Type": kind})
    assert page.status_code == 303, page.text  # the student's own uploads are counted apart from the LMS's


# memory


def test_100_concurrent_16_mb_bodies_leave_the_servers_memory_bounded(tmp_path):
    with start_server(tmp_path) as fresh:  # default --max-body 16M and --max-uploads
        fresh.http.get("/v1/health")
        before, peak, after, statuses = measure(fresh, {"Content-Type": "application/json"})
        assert statuses == [401] * 100
        assert peak - before < 150 and after - before < 50, (before, peak, after)
        before, peak, after, statuses = measure(fresh, _forged())  # these pass the headers: they are read
        assert set(statuses) <= {401, 503} and 401 in statuses, statuses
        assert peak - before < 150 and after - before < 80, (before, peak, after)
