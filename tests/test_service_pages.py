"""The upload page and a submission's page: server-rendered, no JavaScript, refreshing until the grade is in."""

from __future__ import annotations

import html
import re

import pytest

from grader.service.pages import page
from tests.fixtures.service.harness import ADA, notebook_bytes, start_server


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with start_server(tmp_path_factory.mktemp("pages"), "--open-uploads", "--rate", "100/60") as running:
        yield running


def _text(response) -> str:
    return html.unescape(response.text)


def test_the_upload_page_offers_the_assignments_and_shows_the_queue(server):
    response = server.http.get("/")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    text = _text(response)
    assert '<option value="svc-static">' in text and '<option value="svc-evaluate">' in text
    assert 'type="file" name="notebook"' in text and 'type="file" name="model"' in text
    assert 'name="student_id"' in text and "waiting to be graded" in text
    assert "Needed for assignments graded from the exported model (svc-evaluate)" in text
    assert "<script" not in text.lower()


def test_an_upload_leads_to_its_page_which_shows_the_score_and_the_report(server):
    handed_in = server.http.post("/upload", data={"student_id": "page-1", "assignment": "svc-static"},
                                 files={"notebook": ("notebook.ipynb", notebook_bytes(ADA))})
    assert handed_in.status_code == 303
    location = handed_in.headers["location"]
    assert re.fullmatch(r"/submissions/[0-9a-f]{32}", location)
    server.wait(location.rsplit("/", 1)[1])
    text = _text(server.http.get(location))
    assert 'id="score">15 / 15 points' in text and 'data-status="graded"' in text
    assert 'http-equiv="refresh"' not in text  # graded: no more reloading
    report = re.search(r'<iframe id="report" src="([^"]+)"', text)[1]
    assert server.http.get(report).status_code == 200


def test_a_bad_upload_gets_a_page_that_says_what_to_do(server):
    response = server.http.post("/upload", data={"student_id": "page-2", "assignment": "svc-static"},
                                files={"notebook": ("notebook.ipynb", b"print('hello')")})
    assert response.status_code == 422
    text = _text(response)
    assert "not valid JSON" in text and "What to do:" in text and "File > Download > .ipynb" in text
    response = server.http.post("/upload", data={"student_id": "page-2", "assignment": "svc-evaluate"},
                                files={"notebook": ("notebook.ipynb", notebook_bytes(ADA))})
    assert response.status_code == 422 and "torch.export.save" in _text(response)


def test_unknown_submissions_and_files_are_404_pages(server):
    missing = server.http.get("/submissions/0123")
    assert missing.status_code == 404 and "the link you were given" in _text(missing)
    handed_in = server.http.post("/upload", data={"student_id": "page-3", "assignment": "svc-static"},
                                 files={"notebook": ("notebook.ipynb", notebook_bytes(ADA))})
    odd = server.http.get(handed_in.headers["location"] + "/facts.json")
    assert odd.status_code == 404 and "report.html" in odd.json()["error"]["fix"]


def _job(status: str, **extra) -> dict:
    return {"id": "abc", "status": status, "student_id": "s1", "assignment": "mnist-s3",
            "submitted_at": "2026-01-01T10:00:00+00:00", "started_at": "2026-01-01T10:00:05+00:00",
            "queue_position": 3, "reason": None, "links": {}, **extra}


@pytest.mark.parametrize("status, says", [("queued", "position 3</strong> in the queue"),
                                          ("running", "Being graded now")])
def test_a_waiting_submission_page_refreshes_itself(status, says):
    text = page("submission.html.j2", job=_job(status)).body.decode()
    assert '<meta http-equiv="refresh" content="2">' in text and says in text and "<script" not in text


def test_a_failed_submission_page_says_why_and_stops_refreshing():
    text = page("submission.html.j2", job=_job("failed", reason="the grader could not run: no MNIST")).body.decode()
    assert "Grading failed: the grader could not run: no MNIST" in text and "refresh" not in text
