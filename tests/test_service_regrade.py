"""POST /v1/assignments/{id}/regrade over real HTTP: `grade serve` on 127.0.0.1 with a real SQLite store and a
callback receiver. After a rubric fix, every graded submission is re-scored from its stored facts and only the
score that changed is sent again; unsigned is refused; a fix that needs new facts lists re-runs instead."""

from __future__ import annotations

import json
import shutil
import time
import uuid
from datetime import datetime

import pytest

from tests.fixtures.service.harness import ADA, DI, RUBRICS, notebook_bytes, start_server, submission
from tests.fixtures.service.platform import Platform, hidden
from tests.fixtures.service.receiver import Receiver

PATH = "/v1/assignments/svc-static/regrade"


def _rubrics(tmp_path):
    rubrics = tmp_path / "rubrics"
    rubrics.mkdir()
    shutil.copy(RUBRICS / "svc-static.yaml", rubrics / "svc-static.yaml")
    return rubrics


NO_LONGER_REQUIRED = ("    required: true\n", "")  # Di (5/15) now passes; Ada's score (15/15) stays


@pytest.fixture()
def graded(tmp_path):
    """Two graded submissions with callbacks: Ada (commented, 15/15, passes), Di (no comments: 5/15, fails: the
    comments item is required); the server's rubric is a copy the test may edit."""
    rubrics = _rubrics(tmp_path)
    with Receiver() as receiver, start_server(tmp_path / "server", "--callback-retries", "3",
                                              "--callback-backoff", "0.1", rubrics=rubrics) as server:
        hook = f"{receiver.url}/hook"
        jobs = {name: server.submit(submission(f"{name}-{uuid.uuid4().hex[:6]}", folder=folder,
                                               callback_url=hook)).json()["id"]
                for name, folder in (("ada", ADA), ("di", DI))}
        states = {name: server.wait(job) for name, job in jobs.items()}
        assert (states["ada"]["score"], states["ada"]["passed"]) == (15, True), states["ada"]
        assert (states["di"]["score"], states["di"]["passed"]) == (5, False), states["di"]
        receiver.wait(2)
        yield server, receiver, jobs, rubrics / "svc-static.yaml"


def _settled(receiver: Receiver, count: int) -> list[dict]:
    """The callbacks once `count` arrived and a second passed without another."""
    receiver.wait(count)
    time.sleep(1.0)
    return receiver.received


def test_a_signed_regrade_passes_back_only_the_score_that_changed(graded):
    server, receiver, jobs, rubric = graded
    rubric.write_text(rubric.read_text().replace(*NO_LONGER_REQUIRED))
    answer = server.signed("POST", PATH)
    assert answer.status_code == 200, answer.text
    regrade = answer.json()
    assert {k: regrade[k] for k in ("graded", "rescored", "needs_rerun", "changed", "up", "down", "flipped_to_pass",
                                     "flipped_to_fail", "deliveries_queued")} == {
        "graded": 2, "rescored": 2, "needs_rerun": 0, "changed": 1, "up": 0, "down": 0, "flipped_to_pass": 1,
        "flipped_to_fail": 0, "deliveries_queued": 1}
    assert "2 of 2 graded submissions re-scored" in regrade["summary"] and "1 now passes" in regrade["summary"]
    [change] = regrade["changes"]
    assert change["id"] == jobs["di"] and change["passed_flipped"] and change["sent_again"]
    assert (change["before_score"], change["after_score"], change["delta"]) == (5, 5, 0)
    calls = _settled(receiver, 3)
    assert len(calls) == 3, [c["headers"]["X-Grader-Delivery"] for c in calls]  # Ada's is not sent again
    again = calls[2]
    assert again["headers"]["X-Grader-Delivery"] == f"{jobs['di']}.regraded.1"
    assert again["headers"]["X-Grader-Event"] == "submission.regraded"
    assert json.loads(again["body"])["passed"] is True
    assert server.status(jobs["di"])["passed"] is True and server.status(jobs["di"])["callback"]["state"] == "sent"
    report = server.http.get(f"/submissions/{jobs['di']}/results.json")
    assert report.status_code == 200
    # the same re-grade again: nothing changed, nothing sent
    regrade = server.signed("POST", PATH).json()
    assert (regrade["changed"], regrade["deliveries_queued"]) == (0, 0)
    assert len(_settled(receiver, 3)) == 3


def test_an_unsigned_regrade_is_refused_and_changes_nothing(graded):
    server, receiver, jobs, rubric = graded
    rubric.write_text(rubric.read_text().replace(*NO_LONGER_REQUIRED))
    response = server.http.post(PATH)
    assert response.status_code == 401, response.text
    error = response.json()["error"]
    assert error["code"] == "unauthenticated" and "not signed" in error["what"] and error["fix"]
    stale = server.signed("POST", PATH, now=time.time() - 3600)
    assert stale.status_code == 401 and "at most 300 s are accepted" in stale.json()["error"]["what"]
    assert server.status(jobs["di"])["passed"] is False and len(_settled(receiver, 2)) == 2


def test_a_regrade_that_needs_new_facts_lists_the_reruns_and_sends_nothing(graded):
    server, receiver, jobs, rubric = graded
    rubric.write_text(rubric.read_text().replace("mode: static\n", "mode: static\nmodel: net\n"))
    regrade = server.signed("POST", PATH).json()
    assert (regrade["rescored"], regrade["needs_rerun"], regrade["changed"]) == (0, 2, 0), regrade
    assert {r["id"] for r in regrade["reruns"]} == set(jobs.values())
    changed = "other run settings (variable model→net, variable_named false→true)"
    assert all(changed in r["why"] for r in regrade["reruns"])
    assert "must be graded again" in regrade["rerun_note"]
    assert len(_settled(receiver, 2)) == 2


def test_a_broken_rubric_or_an_unknown_assignment_is_refused(graded):
    server, receiver, jobs, rubric = graded
    rubric.write_text(rubric.read_text().replace("ge: 2", "ge: two"))
    broken = server.signed("POST", PATH)
    assert broken.status_code == 422, broken.text
    error = broken.json()["error"]
    assert (error["code"] == "invalid_rubric" and "no longer loads" in error["what"]
            and "svc-static.yaml" in error["where"])
    unknown = server.signed("POST", "/v1/assignments/nope/regrade")
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "unknown_assignment"
    assert server.status(jobs["di"])["score"] == 5


def test_over_lti_only_the_changed_grade_reaches_the_platform_again(tmp_path):
    rubrics = _rubrics(tmp_path)
    with Platform() as platform:
        (tmp_path / "platforms.yaml").write_text(platform.registration())
        with start_server(tmp_path / "server", "--lti", str(tmp_path / "platforms.yaml"), "--rate", "100/60",
                          rubrics=rubrics) as server:
            platform.tool_url, platform.assignment = server.url, "svc-static"
            jobs = {}
            for name, folder in (("ada", ADA), ("di", DI)):
                page = platform.launch(server.http, name)
                form = {"launch": hidden(page.text, "launch"), "assignment": "svc-static"}
                handed_in = server.http.post("/upload", data=form,
                                             files={"notebook": ("notebook.ipynb", notebook_bytes(folder))})
                assert handed_in.status_code == 303, handed_in.text
                jobs[name] = handed_in.headers["location"].rsplit("/", 1)[1]
                server.wait(jobs[name])
            first = platform.wait_scores(2)
            assert sorted((s["body"]["userId"], s["body"]["scoreGiven"]) for s in first) == [
                ("user-ada", 15), ("user-di", 5)]
            (rubrics / "svc-static.yaml").write_text(
                (rubrics / "svc-static.yaml").read_text().replace(*NO_LONGER_REQUIRED))
            regrade = server.signed("POST", PATH).json()
            assert (regrade["changed"], regrade["flipped_to_pass"], regrade["deliveries_queued"]) == (1, 1, 1)
            again = platform.wait_scores(3)[-1]["body"]
            time.sleep(1.0)
            assert len(platform.scores) == 3, [s["body"]["userId"] for s in platform.scores]  # Ada's not again
            assert again["userId"] == "user-di" and again["scoreGiven"] == 5
            di_first = next(s["body"] for s in first if s["body"]["userId"] == "user-di")
            assert datetime.fromisoformat(again["timestamp"]) > datetime.fromisoformat(di_first["timestamp"])
            assert server.status(jobs["di"])["lti_passback"]["state"] in ("sending", "sent")
