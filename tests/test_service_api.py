"""The /v1 API over real HTTP: `grade serve` in a subprocess on 127.0.0.1, a real SQLite store, httpx.

One test per rejection (unsigned, bad signature, stale timestamp, replayed delivery,
oversized, invalid notebook, unknown assignment, rate limited), each checking that
the answer says what to fix and that nothing was queued; then callbacks, health,
metrics and the OpenAPI docs.
"""

from __future__ import annotations

import json
import time
import uuid

import pytest

from grader.service.signing import verify
from tests.fixtures.service.harness import ADA, DI, notebook_bytes, start_server, submission
from tests.fixtures.service.receiver import Receiver

RATE = 3


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with start_server(tmp_path_factory.mktemp("api"), "--workers", "2", "--max-body", "512K", "--rate", f"{RATE}/60",
                      "--callback-retries", "3", "--callback-backoff", "0.1") as running:
        yield running


def student() -> str:
    return f"s-{uuid.uuid4().hex[:10]}"  # a fresh student per test: the rate limit is per student


def _error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["status"] == status and error["code"] == code and error["what"] and error["fix"], error
    return error


def _nothing_queued(server, before: dict) -> None:
    assert server.jobs() == before


# accepted


def test_a_signed_json_submission_is_stored_graded_and_reported(server):
    response = server.submit(submission(student()))
    assert response.status_code == 202, response.text
    accepted = response.json()
    assert set(accepted) == {"id", "status_url"} and response.headers["location"] == accepted["status_url"]
    assert accepted["status_url"] == f"{server.url}/v1/submissions/{accepted['id']}"
    state = server.wait(accepted["id"])
    assert state["status"] == "graded" and (state["score"], state["max_score"], state["passed"]) == (15, 15, True)
    assert [item["id"] for item in state["sheet"]["items"]] == ["comments", "cells"]
    report = server.http.get(state["links"]["report_html"])
    assert report.status_code == 200 and report.headers["content-type"].startswith("text/html")
    results = server.http.get(state["links"]["results_json"]).json()
    assert results["score"] == 15  # the Gradescope results file


def test_a_multipart_upload_is_graded_the_same_way(server):
    import httpx

    request = httpx.Request("POST", f"{server.url}/v1/submissions", data={"student_id": student(),
                            "assignment": "svc-static"}, files={"notebook": ("notebook.ipynb", notebook_bytes(DI))})
    body = request.read()
    response = server.signed("POST", "/v1/submissions", body, delivery=uuid.uuid4().hex,
                             headers={"Content-Type": request.headers["content-type"]})
    assert response.status_code == 202, response.text
    state = server.wait(response.json()["id"])
    assert state["status"] == "graded" and state["passed"] is False  # Di comments nothing: a required item fails
    assert state["sheet"]["items"][0]["status"] == "failed"


def test_a_status_has_a_queue_position_only_while_waiting(server):
    ids = [server.submit(submission(student())).json()["id"] for _ in range(4)]
    for state in (server.status(job) for job in ids):
        assert (state["queue_position"] is None) == (state["status"] != "queued")
        assert state["queue_position"] is None or state["queue_position"] >= 1
    assert all(server.wait(job)["queue_position"] is None for job in ids)


# one test per rejection


def test_unsigned_is_401_and_nothing_is_queued(server):
    before = server.jobs()
    response = server.http.post("/v1/submissions", json=submission(student()),
                                headers={"X-Grader-Delivery": uuid.uuid4().hex})
    error = _error(response, 401, "unauthenticated")
    assert "not signed" in error["what"] and "HMAC-SHA256" in error["fix"]
    _nothing_queued(server, before)


def test_a_bad_signature_is_401_and_nothing_is_queued(server):
    before = server.jobs()
    body = json.dumps(submission(student())).encode()
    response = server.http.post("/v1/submissions", content=body, headers={
        "Content-Type": "application/json", "X-Grader-Delivery": uuid.uuid4().hex,
        "X-Grader-Timestamp": str(int(time.time())), "X-Grader-Signature": "sha256=" + "0" * 64})
    error = _error(response, 401, "unauthenticated")
    assert "does not match" in error["what"] and error["where"] == "X-Grader-Signature"
    _nothing_queued(server, before)


def test_a_stale_timestamp_is_401_and_nothing_is_queued(server):
    before = server.jobs()
    response = server.submit(submission(student()), now=time.time() - 6 * 60)  # correctly signed, 6 minutes ago
    error = _error(response, 401, "unauthenticated")
    assert "s old" in error["what"] and error["where"] == "X-Grader-Timestamp" and "clock" in error["fix"]
    _nothing_queued(server, before)


def test_a_replayed_delivery_answers_with_the_first_job(server):
    payload, delivery = submission(student()), uuid.uuid4().hex
    first = server.submit(payload, delivery=delivery)
    before = server.jobs()
    again = server.submit(payload, delivery=delivery)  # an LMS retry: signed anew, same delivery id
    assert first.status_code == again.status_code == 202
    assert again.json() == first.json() and again.headers["x-grader-replayed"] == "true"
    assert sum(server.jobs().values()) == sum(before.values())  # no second job
    replay = server.http.post("/v1/submissions", content=again.request.content,  # the same bytes, a new delivery id
                              headers={**again.request.headers, "X-Grader-Delivery": uuid.uuid4().hex})
    assert replay.json() == first.json()
    server.wait(first.json()["id"])


def test_a_delivery_id_reused_for_another_submission_is_409(server):
    delivery = uuid.uuid4().hex
    assert server.submit(submission(student()), delivery=delivery).status_code == 202
    error = _error(server.submit(submission(student()), delivery=delivery), 409, "delivery_conflict")
    assert error["where"] == "X-Grader-Delivery" and "new delivery id" in error["fix"]


def test_a_submission_without_a_delivery_id_is_400(server):
    body = json.dumps(submission(student())).encode()
    error = _error(server.signed("POST", "/v1/submissions", body, headers={"Content-Type": "application/json"}),
                   400, "missing_delivery")
    assert "same id again when you retry" in error["fix"]


def test_an_oversized_body_is_413_and_nothing_is_queued(server):
    before = server.jobs()
    payload = submission(student(), notebook="A" * (600 << 10))  # over --max-body 512K
    error = _error(server.submit(payload), 413, "too_large")
    assert "at most 524,288 bytes" in error["what"] and "--max-body" in error["fix"]
    _nothing_queued(server, before)


@pytest.mark.parametrize("notebook, says", [
    (b'{"cells": [\n  {"cell_type": "code",,\n]}', "not valid JSON"),
    (json.dumps({"nbformat": 4, "nbformat_minor": 4, "metadata": {}, "cells": [{"cell_type": "code"}]}).encode(),
     "not a valid notebook"),
])
def test_an_invalid_notebook_is_422_before_it_is_queued(server, notebook, says):
    import base64

    before = server.jobs()
    payload = submission(student(), notebook=base64.b64encode(notebook).decode())
    error = _error(server.submit(payload), 422, "invalid_notebook")
    assert says in error["what"] and error["where"] == "notebook" and ".ipynb" in error["fix"]
    _nothing_queued(server, before)


def test_an_unknown_assignment_is_404_listing_the_known_ones(server):
    before = server.jobs()
    error = _error(server.submit(submission(student(), assignment="mnist-s9")), 404, "unknown_assignment")
    assert "'mnist-s9'" in error["what"] and "svc-static" in error["fix"] and "svc-evaluate" in error["fix"]
    _nothing_queued(server, before)


def test_the_rate_limit_is_429_with_retry_after(server):
    import base64

    who = student()

    def resubmission(n: int) -> dict:  # the student changes the notebook each time (a byte-identical one is a replay)
        return submission(who, notebook=base64.b64encode(notebook_bytes(ADA) + b" " * n).decode())
    accepted = {server.submit(resubmission(n)).json()["id"] for n in range(RATE)}
    assert len(accepted) == RATE
    response = server.submit(resubmission(RATE))
    error = _error(response, 429, "rate_limited")
    assert 1 <= int(response.headers["retry-after"]) <= 60 and f"{RATE} submissions" in error["what"]
    assert "Retry-After" in error["fix"]
    assert server.submit(submission(student())).status_code == 202  # another student is not held up


def test_an_evaluate_assignment_without_the_model_is_422(server):
    error = _error(server.submit(submission(student(), assignment="svc-evaluate")), 422, "missing_model")
    assert "torch.export.save" in error["fix"] and error["where"] == "model"


def test_a_status_is_signed_and_an_unknown_job_is_404(server):
    _error(server.http.get("/v1/submissions/nope"), 401, "unauthenticated")
    error = _error(server.signed("GET", "/v1/submissions/nope"), 404, "unknown_job")
    assert "status_url" in error["fix"]


# callbacks


def test_the_callback_is_signed_like_requests_and_carries_the_score_sheet(server):
    with Receiver() as receiver:
        job = server.submit(submission(student(), callback_url=f"{receiver.url}/hook")).json()["id"]
        call = receiver.wait(1)[0]
    assert call["path"] == "/hook" and call["headers"]["X-Grader-Delivery"] == f"{job}.graded"
    verify(server.secret, call["headers"], "POST", "/hook", call["body"])  # raises if the signature is wrong
    sent = json.loads(call["body"])
    assert sent["id"] == job and sent["status"] == "graded" and sent["score"] == 15 and sent["sheet"]["items"]
    assert server.wait(job)["callback"]["state"] in ("sending", "sent")


def test_a_callback_that_fails_at_first_is_retried(server):
    with Receiver(fail_first=2) as receiver:
        job = server.submit(submission(student(), callback_url=receiver.url)).json()["id"]
        receiver.wait(1)
        deadline = time.monotonic() + 10
        while server.status(job)["callback"]["state"] != "sent" and time.monotonic() < deadline:
            time.sleep(0.1)
    assert receiver.attempts == 3 and server.status(job)["callback"] == {
        **server.status(job)["callback"], "state": "sent", "attempts": 3}


def test_a_callback_that_keeps_failing_is_recorded_and_never_blocks_the_queue(server):
    with Receiver(fail_first=10**6) as receiver:
        failing = server.submit(submission(student(), callback_url=receiver.url)).json()["id"]
        server.wait(failing)
        after = server.submit(submission(student())).json()["id"]
        assert server.wait(after, timeout=10)["status"] == "graded"  # graded while the callback still retries
        deadline = time.monotonic() + 20
        while server.status(failing)["callback"]["state"] != "failed":
            assert time.monotonic() < deadline, server.status(failing)
            time.sleep(0.1)
    callback = server.status(failing)["callback"]
    assert callback["attempts"] == 3 and "503" in callback["error"]
    assert server.status(failing)["status"] == "graded"


# operations


def test_health_metrics_and_openapi_docs(server):
    health = server.http.get("/v1/health").json()
    assert health["status"] == "ok" and set(health["jobs"]) == {"queued", "running", "graded", "failed"}
    job = server.submit(submission(student())).json()["id"]
    server.wait(job)
    metrics = server.http.get("/v1/metrics")
    assert metrics.headers["content-type"].startswith("text/plain")
    text = metrics.text
    assert "grader_queue_depth " in text and 'grader_jobs{status="graded"}' in text
    assert "grader_submit_to_graded_seconds_bucket" in text
    assert 'grader_rejections_total{code="unauthenticated"}' in text
    docs = server.http.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    spec = server.http.get("/openapi.json").json()
    post = spec["paths"]["/v1/submissions"]["post"]
    assert set(post["requestBody"]["content"]) == {"application/json", "multipart/form-data"}
    assert {"401", "404", "413", "422", "429"} <= set(post["responses"])
    assert "lti" not in post["requestBody"]["content"]["application/json"]["schema"]["properties"]


# the other things a caller can get wrong, each saying what to do


def _multipart(server, data: dict, files: dict):
    import httpx

    request = httpx.Request("POST", f"{server.url}/v1/submissions", data=data, files=files)
    body = request.read()
    return server.signed("POST", "/v1/submissions", body, delivery=uuid.uuid4().hex,
                         headers={"Content-Type": request.headers["content-type"]})


def test_other_mistakes_each_get_their_own_answer(server):
    import base64

    cases = [
        (server.signed("POST", "/v1/submissions", b"student_id=1", delivery=uuid.uuid4().hex,
                       headers={"Content-Type": "text/plain"}), 415, "unsupported_media_type", "multipart/form-data"),
        (server.submit({**submission(student()), "model": base64.b64encode(b"not a zip").decode()}), 422,
         "invalid_model", "torch.export.save"),
        (server.submit(submission("a/b")), 422, "invalid_student", "no slashes"),
        (server.submit({**submission(student()), "grade": 100}), 422, "invalid_submission", "/docs"),
        (_multipart(server, {"student_id": student(), "assignment": "svc-static"}, {"other": ("x", b"1")}), 422,
         "missing_notebook", "form field `notebook`"),
        (_multipart(server, {"student_id": student(), "assignment": "svc-static", "lti": "{"},
                    {"notebook": ("n.ipynb", notebook_bytes())}), 422, "invalid_submission", "leave `lti` out"),
        (server.signed("POST", "/v1/submissions", b"--x\r\nbroken", delivery=uuid.uuid4().hex,
                       headers={"Content-Type": "multipart/form-data"}), 400, "invalid_multipart",
         "boundary"),
    ]
    for response, status, code, fix in cases:
        assert fix in _error(response, status, code)["fix"]
