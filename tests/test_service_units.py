"""The service's parts without a server: signatures, the durable store's exactly-once rules, intake checks,
platform files, score bodies, the secret and the `grade serve` command's refusals."""

from __future__ import annotations

import hashlib
import hmac
import json
import sqlite3
from datetime import datetime

import pytest

from grader.cli.main import main
from grader.errors import GraderError
from grader.service.errors import ServiceError
from grader.service.intake import check_notebook, from_json
from grader.service.lti.ags import score_body, scores_url
from grader.service.lti.config import load_registrations
from grader.service.settings import load_secret, parse_rate
from grader.service.signing import signature, signed_headers, verify
from grader.service.store import DeliveryConflict, JobResult, NewJob, RateLimited, SQLiteStore
from tests.fixtures.service.harness import RUBRICS, submission
from tests.fixtures.service.stores import store  # noqa: F401 (the fixture: both backends)

SECRET = b"k" * 32
NOW = 1_800_000_000.0
PATH = "/v1/submissions"


# signatures


def test_a_fresh_signature_over_timestamp_method_path_and_body_verifies():
    body = b'{"a": 1}'
    headers = signed_headers(SECRET, "POST", PATH, body, now=NOW)
    assert headers["X-Grader-Signature"] == signature(SECRET, str(int(NOW)), "POST", PATH, body)
    message = f"{int(NOW)}.POST.{PATH}.".encode() + body  # the format docs/service.md gives for openssl
    assert headers["X-Grader-Signature"] == "sha256=" + hmac.new(SECRET, message, hashlib.sha256).hexdigest()
    assert verify(SECRET, headers, "POST", PATH, body, now=NOW + 299) == headers["X-Grader-Signature"]


@pytest.mark.parametrize("case, change, says", [
    ("unsigned", lambda h, b: ({"X-Grader-Timestamp": h["X-Grader-Timestamp"]}, b), "not signed"),
    ("no timestamp", lambda h, b: ({"X-Grader-Signature": h["X-Grader-Signature"]}, b), "no X-Grader-Timestamp"),
    ("timestamp not a number", lambda h, b: ({**h, "X-Grader-Timestamp": "yesterday"}, b), "not a Unix time"),
    ("body changed", lambda h, b: (h, b + b" "), "does not match"),
    ("other secret", lambda h, b: (signed_headers(b"x" * 32, "POST", PATH, b, now=NOW), b), "does not match"),
    ("non-ASCII forgery", lambda h, b: ({**h, "X-Grader-Signature": "sha256=é"}, b), "is not sha256="),
    ("upper-case hex", lambda h, b: ({**h, "X-Grader-Signature": h["X-Grader-Signature"].upper()}, b),
     "is not sha256="),
])
def test_a_bad_signature_is_refused_with_what_failed(case, change, says):
    body = b'{"a": 1}'
    headers, sent = change(signed_headers(SECRET, "POST", PATH, body, now=NOW), body)
    with pytest.raises(ServiceError) as err:
        verify(SECRET, headers, "POST", PATH, sent, now=NOW)
    assert err.value.status == 401 and says in err.value.what and err.value.fix


@pytest.mark.parametrize("offset, says", [(301, "301 s old"), (-400, "400 s in the future")])
def test_a_request_signed_more_than_five_minutes_away_is_refused(offset, says):
    headers = signed_headers(SECRET, "GET", "/v1/submissions/abc", b"", now=NOW)
    with pytest.raises(ServiceError) as err:
        verify(SECRET, headers, "GET", "/v1/submissions/abc", b"", now=NOW + offset)
    assert says in err.value.what and "clock" in err.value.fix


# the store


def _new(student="s1", **kw) -> NewJob:
    return NewJob(student=student, assignment="svc-static", source="api", notebook=b"{}", **kw)


def _job_result() -> JobResult:
    return JobResult(score=1.0, max_score=2.0, passed=False, sheet={"score": 1.0}, report_dir="x")


@pytest.fixture
def sqlite_store(tmp_path):
    opened = SQLiteStore(tmp_path / "grader.db")
    yield opened
    opened.close()


def _kinds(store, job_id):
    return [(kind, attempt) for _, kind, attempt, _ in store.events(job_id)]


def test_a_job_is_graded_once_by_the_holder_of_its_lease(store):
    job, created = store.submit(_new())
    assert created and job.status == "queued" and store.position(job) == 1
    claimed = store.claim("w1", lease=30, max_attempts=3)
    assert claimed.id == job.id and claimed.attempts == 1 and claimed.status == "running"
    assert store.claim("w2", lease=30, max_attempts=3) is None  # one job, one worker
    assert not store.complete(claimed, "w2", _job_result())  # not w2's lease
    assert store.complete(claimed, "w1", _job_result())
    assert not store.complete(claimed, "w1", _job_result())  # settled already
    graded = store.get(job.id)
    assert (graded.status, graded.score, graded.max_score, graded.sheet) == ("graded", 1.0, 2.0, {"score": 1.0})
    assert _kinds(store, job.id) == [("submitted", 0), ("claimed", 1), ("graded", 1)]


def test_the_queue_position_counts_the_jobs_ahead(store):
    jobs = [store.submit(_new(student=f"s{i}"))[0] for i in range(3)]
    assert [store.position(job) for job in jobs] == [1, 2, 3]
    store.claim("w", lease=30, max_attempts=3)
    assert [store.position(job) for job in jobs[1:]] == [1, 2]


def test_an_interrupted_job_runs_again_from_the_start_and_only_the_new_attempt_completes(store):
    job, _ = store.submit(_new())
    first = store.claim("killed-server", lease=-1, max_attempts=3)  # its lease ran out (no heartbeat since the kill)
    assert store.recover() == 1  # the next start
    second = store.claim("new-server", lease=30, max_attempts=3)
    assert second.id == job.id and second.attempts == 2
    assert not store.complete(first, "killed-server", _job_result())  # a late first attempt is refused
    assert store.complete(second, "new-server", _job_result())
    assert _kinds(store, job.id) == [("submitted", 0), ("claimed", 1), ("requeued", 1), ("claimed", 2), ("graded", 2)]


def test_an_expired_lease_lets_another_worker_take_the_job(store):
    job, _ = store.submit(_new())
    stale = store.claim("slow", lease=-1, max_attempts=3)  # expired at once
    taken = store.claim("other", lease=30, max_attempts=3)
    assert taken.id == job.id and taken.attempts == 2
    assert not store.complete(stale, "slow", _job_result())
    assert store.complete(taken, "other", _job_result())


def test_a_job_interrupted_too_often_fails_with_the_reason(store):
    job, _ = store.submit(_new())
    for _ in range(2):
        store.claim("w", lease=-1, max_attempts=2)
        store.recover()
    assert store.claim("w", lease=30, max_attempts=2) is None
    failed = store.get(job.id)
    assert failed.status == "failed" and "interrupted 2 times" in failed.reason and "grade check" in failed.reason


def test_a_delivery_id_is_one_job_and_another_body_under_it_conflicts(store):
    job, created = store.submit(_new(delivery="d-1", body_sha256="aaa"))
    again, created_again = store.submit(_new(delivery="d-1", body_sha256="aaa"))
    assert created and not created_again and again.id == job.id
    with pytest.raises(DeliveryConflict):
        store.submit(_new(delivery="d-1", body_sha256="bbb"))
    replay, created = store.submit(_new(delivery="d-2", signature="sig-1"))
    same, created_again = store.submit(_new(delivery="d-3", signature="sig-1"))  # same signed bytes, new header
    assert created and not created_again and same.id == replay.id
    assert store.counts()["queued"] == 2


def test_the_rate_limit_counts_a_students_recent_submissions(store):
    for i in range(3):
        store.submit(_new(), rate=(3, 60), now=NOW + i)
    with pytest.raises(RateLimited) as limited:
        store.submit(_new(), rate=(3, 60), now=NOW + 10)
    assert limited.value.retry_after == pytest.approx(50)
    store.submit(_new(student="s2"), rate=(3, 60), now=NOW + 10)  # others are not affected
    store.submit(_new(), rate=(3, 60), now=NOW + 61)  # the window moved on


def test_completing_a_job_queues_its_deliveries_in_the_same_transaction(store):
    job, _ = store.submit(_new(callback_url="http://127.0.0.1:9/cb", lti={"lineitem": "x", "user_id": "u"}))
    assert store.deliveries(job.id) == []
    store.complete(store.claim("w", 30, 3), "w", _job_result())
    assert [(d.kind, d.state) for d in store.deliveries(job.id)] == [("callback", "pending"), ("lti", "pending")]
    sending = store.claim_delivery("outbox", lease=-1)  # its server was killed while sending
    assert sending.kind == "callback" and store.recover() == 0
    assert store.deliveries(job.id)[0].state == "pending"  # a send interrupted by a stop is sent again
    store.finish_delivery(store.claim_delivery("outbox", 60), ok=False, attempts=3, error="HTTP 503")
    assert (store.deliveries(job.id)[0].state, store.deliveries(job.id)[0].attempts) == ("failed", 3)


def test_a_rescore_records_the_new_score_and_makes_its_deliveries_due_again(store):
    job, _ = store.submit(_new(callback_url="http://127.0.0.1:9/cb", lti={"lineitem": "x", "user_id": "u"}))
    other, _ = store.submit(_new(student="s2"))  # still queued
    store.complete(store.claim("w", 30, 3), "w", _job_result())
    for _ in range(2):
        store.finish_delivery(store.claim_delivery("outbox", 60), ok=True, attempts=1, error=None)
    assert [j.id for j in store.graded("svc-static")] == [job.id] and store.graded("nothing") == []
    changed = JobResult(score=2.0, max_score=2.0, passed=True, sheet={"score": 2.0}, report_dir="x")
    assert store.rescore(store.get(job.id), changed, deliver=True)
    rescored = store.get(job.id)
    assert (rescored.score, rescored.passed, rescored.sheet) == (2.0, True, {"score": 2.0})
    assert [(d.kind, d.state, d.attempts) for d in store.deliveries(job.id)] == [("callback", "pending", 0),
                                                                                 ("lti", "pending", 0)]
    assert [e[1] for e in store.events(job.id)][-1] == "rescored"
    assert not store.rescore(store.get(other.id), changed, deliver=True)  # not graded: nothing changes


def test_a_sending_that_ends_after_a_rescore_leaves_the_new_score_due(store):
    job, _ = store.submit(_new(callback_url="http://127.0.0.1:9/cb"))
    store.complete(store.claim("w", 30, 3), "w", _job_result())
    sending = store.claim_delivery("outbox", 60)  # the first score is on its way ...
    store.rescore(store.get(job.id), JobResult(score=2.0, max_score=2.0, passed=True, sheet={}, report_dir="x"),
                  deliver=True)
    store.finish_delivery(sending, ok=True, attempts=1, error=None)  # ... and arrives after the re-grade
    assert store.deliveries(job.id)[0].state == "pending"  # the new score is still to be sent
    quiet, _ = store.submit(_new(student="s3", callback_url="http://127.0.0.1:9/cb"))
    store.complete(store.claim("w", 30, 3), "w", _job_result())
    store.finish_delivery(store.claim_delivery("outbox", 60), ok=True, attempts=1, error=None)
    store.finish_delivery(store.claim_delivery("outbox", 60), ok=True, attempts=1, error=None)
    assert store.rescore(store.get(quiet.id), _job_result(), deliver=False)
    assert store.deliveries(quiet.id)[0].state == "sent"  # without `deliver`, nothing is sent again


def test_a_failed_job_notifies_its_callback_but_posts_no_lti_score(store):
    job, _ = store.submit(_new(callback_url="http://127.0.0.1:9/cb", lti={"lineitem": "x", "user_id": "u"}))
    assert store.fail(store.claim("w", 30, 3), "w", "no MNIST")
    assert [d.kind for d in store.deliveries(job.id)] == ["callback"]


def test_a_second_server_cannot_open_the_same_sqlite_store(sqlite_store):
    with pytest.raises(GraderError) as err:
        SQLiteStore(sqlite_store.path)
    assert "in use by grade serve (pid" in err.value.what and "--store" in err.value.fix


def test_the_store_is_sqlite_in_wal_mode(sqlite_store):
    sqlite_store.submit(_new())
    db = sqlite3.connect(sqlite_store.path)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db.close()


def test_lti_nonces_are_used_once_and_states_expire(store):
    store.put_state("st", {"nonce": "n"}, ttl=60)
    assert store.get_state("st") == {"nonce": "n"}
    assert store.use_nonce("n", 60) and not store.use_nonce("n", 60)
    store.put_state("old", {"nonce": "m"}, ttl=-1)
    assert store.get_state("old") is None


# intake


def test_a_notebook_that_is_not_json_says_where():
    with pytest.raises(ServiceError) as err:
        check_notebook(b'{"cells": [\n  {"cell_type": "code",\n  }\n]}')
    assert err.value.status == 422 and "not valid JSON" in err.value.what and "line 3" in err.value.what
    assert ".ipynb" in err.value.fix


def test_json_that_is_no_notebook_names_the_bad_field():
    notebook = {"nbformat": 4, "nbformat_minor": 5, "metadata": {},
                "cells": [{"cell_type": "code", "source": "x = 1", "metadata": {}, "outputs": []}]}
    with pytest.raises(ServiceError) as err:
        check_notebook(json.dumps(notebook).encode())
    assert "not a valid notebook" in err.value.what and "cells[0]" in err.value.what


def test_a_submission_missing_a_field_or_with_bad_base64_says_which():
    with pytest.raises(ServiceError) as err:
        from_json(json.dumps({"assignment": "svc-static", "notebook": ""}).encode())
    assert err.value.status == 422 and err.value.where == "student_id" and "/docs" in err.value.fix
    with pytest.raises(ServiceError) as err:
        from_json(json.dumps({**submission("s"), "notebook": "%%%"}).encode())
    assert err.value.code == "invalid_base64" and err.value.where == "notebook"
    with pytest.raises(ServiceError) as err:
        from_json(json.dumps({**submission("s"), "callback_url": "ftp://x"}).encode())
    assert err.value.where == "callback_url"


# LTI files and bodies


def test_a_platform_file_error_names_the_line_and_the_allowed_keys(tmp_path):
    path = tmp_path / "platforms.yaml"
    path.write_text("platforms:\n  - issuer: https://lms.example\n    clientid: 1\n    auth_login_url: "
                    "https://lms.example/auth\n    auth_token_url: https://lms.example/token\n    key_set_url: "
                    "https://lms.example/jwks\n    deployment_ids: [1]\n")
    with pytest.raises(GraderError) as err:
        load_registrations(path)
    assert err.value.where == f"{path}:3" and "did you mean 'client_id'" in err.value.what


def test_a_canvas_client_id_written_as_a_number_is_read_as_text(tmp_path):
    path = tmp_path / "platforms.yaml"
    path.write_text("platforms:\n  - issuer: https://canvas.instructure.com\n    client_id: 10000000000123\n"
                    "    auth_login_url: https://sso.canvaslms.com/api/lti/authorize_redirect\n"
                    "    auth_token_url: https://sso.canvaslms.com/login/oauth2/token\n"
                    "    key_set_url: https://sso.canvaslms.com/api/lti/security/jwks\n    deployment_ids: [1:abc]\n")
    platform = load_registrations(path).find("https://canvas.instructure.com")
    assert platform.client_id == "10000000000123" and platform.audience == platform.auth_token_url


def test_scores_go_to_the_line_item_path_with_its_query_kept():
    assert scores_url("https://moodle.example/mod/lti/services.php/2/lineitems/3/lineitem?type_id=1") == \
        "https://moodle.example/mod/lti/services.php/2/lineitems/3/lineitem/scores?type_id=1"
    assert scores_url("https://canvas.example/api/lti/courses/1/line_items/7/") == \
        "https://canvas.example/api/lti/courses/1/line_items/7/scores"


def test_a_score_is_completed_and_fully_graded_with_a_timestamp():
    body = score_body("u1", 12.5, 15.0, "note", NOW)
    assert body == {"userId": "u1", "scoreGiven": 12.5, "scoreMaximum": 15.0, "activityProgress": "Completed",
                    "gradingProgress": "FullyGraded", "timestamp": body["timestamp"], "comment": "note"}
    assert datetime.fromisoformat(body["timestamp"]).timestamp() == NOW


# the secret and the command


def test_the_secret_comes_from_the_environment_or_a_file(tmp_path):
    assert load_secret(None, {"GRADER_WEBHOOK_SECRET": "s" * 20}) == b"s" * 20
    (tmp_path / "secret").write_text("f" * 40 + "\n")
    assert load_secret(tmp_path / "secret", {"GRADER_WEBHOOK_SECRET": "s" * 20}) == b"f" * 40


@pytest.mark.parametrize("file, env, says", [
    (None, {}, "no webhook secret"),
    (None, {"GRADER_WEBHOOK_SECRET": "short"}, "5 bytes"),
    ("missing", {}, "secret file not found"),
])
def test_a_missing_or_weak_secret_is_refused_with_how_to_make_one(tmp_path, file, env, says):
    with pytest.raises(GraderError) as err:
        load_secret(tmp_path / file if file else None, env)
    assert says in err.value.what and "secrets.token_hex" in err.value.fix


def test_rates_read_like_count_per_period():
    assert (parse_rate("10/10m").count, parse_rate("10/10m").seconds) == (10, 600)
    assert parse_rate("30/1h").seconds == 3600
    with pytest.raises(GraderError) as err:
        parse_rate("ten a minute")
    assert err.value.where == "--rate" and "10/600" in err.value.fix


def test_grade_serve_without_a_secret_exits_2_saying_how_to_give_one(monkeypatch, capsys, tmp_path):
    monkeypatch.delenv("GRADER_WEBHOOK_SECRET", raising=False)
    assert main(["serve", "--rubrics", str(RUBRICS), "--store", str(tmp_path / "g.db")]) == 2
    err = capsys.readouterr().err
    assert "no webhook secret" in err and "GRADER_WEBHOOK_SECRET" in err and "--secret-file" in err


def test_grade_serve_has_no_option_that_takes_the_secret_itself(capsys):
    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    assert "--secret " not in capsys.readouterr().out


def test_grade_serve_refuses_zero_workers(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("GRADER_WEBHOOK_SECRET", "s" * 32)
    assert main(["serve", "--workers", "0", "--store", str(tmp_path / "g.db")]) == 2
    assert "--workers 0 is too small" in capsys.readouterr().err


def test_grade_serve_with_a_folder_without_rubrics_exits_2(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("GRADER_WEBHOOK_SECRET", "s" * 32)
    assert main(["serve", "--rubrics", str(tmp_path), "--store", str(tmp_path / "g.db")]) == 2
    assert "no rubric (.yaml) in the folder" in capsys.readouterr().err


def test_a_rubric_id_used_twice_in_the_rubrics_folder_stops_the_start(tmp_path):
    from grader.service.assignments import Assignments

    for name in ("a.yaml", "b.yaml"):
        (tmp_path / name).write_text((RUBRICS / "svc-static.yaml").read_text())
    with pytest.raises(GraderError) as err:
        Assignments(tmp_path)
    assert "'svc-static' is used twice" in err.value.what and err.value.where.endswith("b.yaml")


def test_an_execute_rubric_whose_grading_environment_is_not_built_stops_the_start(tmp_path, monkeypatch):
    from grader.service.assignments import Assignments

    monkeypatch.setenv("GRADER_ENVS", str(tmp_path / "no-envs"))
    rubrics = tmp_path / "rubrics"
    rubrics.mkdir()
    (rubrics / "s3.yaml").write_text((RUBRICS.parents[3] / "rubrics" / "mnist-s3.yaml").read_text())
    with pytest.raises(GraderError) as err:
        Assignments(rubrics)
    assert "grading environment" in err.value.what and "not built yet" in err.value.what
    assert f"grade env build {rubrics / 's3.yaml'}" in err.value.fix


def test_a_platform_registered_twice_names_both_lines(tmp_path):
    entry = ("  - issuer: https://lms.example\n    client_id: c\n    auth_login_url: https://lms.example/auth\n"
             "    auth_token_url: https://lms.example/token\n    key_set_url: https://lms.example/jwks\n"
             "    deployment_ids: [d]\n")
    (tmp_path / "p.yaml").write_text("platforms:\n" + entry + entry)
    with pytest.raises(GraderError) as err:
        load_registrations(tmp_path / "p.yaml")
    assert "registered twice" in err.value.what and err.value.where.endswith("p.yaml:9") and "(line 3)" in err.value.fix


def test_a_key_file_that_is_no_key_says_what_to_do(tmp_path):
    from grader.service.lti.keys import ToolKey

    (tmp_path / "key.pem").write_text("not a key")
    with pytest.raises(GraderError) as err:
        ToolKey.load_or_create(tmp_path / "key.pem")
    assert "not an unencrypted PEM private key" in err.value.what and "delete it" in err.value.fix
    created = ToolKey.load_or_create(tmp_path / "new.pem")
    assert (tmp_path / "new.pem").stat().st_mode & 0o777 == 0o600
    assert ToolKey.load_or_create(tmp_path / "new.pem").kid == created.kid  # the same key next start
