"""Self-check on `grade serve` (POST/GET /v1/selfcheck) through its client `grader.selfcheck_remote.submit`,
over real HTTP: `grade serve` in a subprocess on 127.0.0.1, a real git server for links, a real sandbox for the dry
run. A self-check runs a static check or a dry run and records no grade: nothing lands among the submissions, in
the reports (gradebook), or in the outbox (callbacks, passback); the notebook is not kept.
"""

from __future__ import annotations

import re
import shutil
import sqlite3
import time
from pathlib import Path

import httpx
import pytest

from grader.errors import GraderError
from grader.selfcheck_remote import KEY_HEADER, PATH, submit
from tests.fixtures.service.harness import ADA, DI, RUBRICS, notebook_bytes, start_server
from tests.gitserver import git, publish, serving

ROOT = Path(__file__).resolve().parents[1]
KEY = "selfcheck-key-for-svc-static-0123"  # svc-evaluate has no key: self-checks there come from LTI only
GAP = ROOT / "tests" / "fixtures" / "gap" / "gap_mean_dims.ipynb"


def _keys(folder: Path, **keys: str) -> Path:
    path = folder / "selfcheck-keys.yaml"
    path.write_text("".join(f"{assignment}: {key}\n" for assignment, key in keys.items()))
    return path


@pytest.fixture(scope="module")
def repo_server(tmp_path_factory):
    """github.com/ada/cnn, served on loopback: the Ada notebook in a repository."""
    root = tmp_path_factory.mktemp("git")
    work = root / "work"
    work.mkdir()
    shutil.copy(ADA / "notebook.ipynb", work / "notebook.ipynb")
    git("init", "-q", "-b", "main", cwd=work)
    git("add", ".", cwd=work)
    git("commit", "-q", "-m", "s3", cwd=work)
    publish(work, root / "served", "ada/cnn")
    with serving(root / "served") as base:
        yield base


HIDDEN = """\
id: svc-hidden
title: "Self-check tests: one item the instructor keeps to themselves"
mode: static
items:
  - id: cells
    title: At least two code cells
    fact: notebook.code_cells
    ge: 2
    points: 5
  - id: secret-probe
    title: The instructor's own probe
    fact: notebook.code_cells
    ge: 1
    points: 3
    required: true
    visibility: hidden
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory, repo_server):
    work = tmp_path_factory.mktemp("selfcheck")
    rubrics = shutil.copytree(RUBRICS, work / "rubrics")
    (rubrics / "svc-hidden.yaml").write_text(HIDDEN)
    github = {"GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": f"url.{repo_server}.insteadOf",
              "GIT_CONFIG_VALUE_0": "https://github.com/"}
    keys = _keys(work, **{"svc-static": KEY, "svc-hidden": KEY.replace("static", "hidden")})
    with start_server(work, "--selfcheck-keys", str(keys), "--max-body", "256K", "--log-level", "info",
                      rubrics=rubrics, env=github) as running:  # info: the access log, where a key must not be
        yield running


def _error(response: httpx.Response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["status"] == status and error["code"] == code and error["what"] and error["where"] \
        and error["fix"], error
    return error


def _post(server, *, key: str | None = KEY, notebook: bytes | None = None, **fields) -> httpx.Response:
    files = {"notebook": ("nb.ipynb", notebook)} if notebook is not None else None
    return server.http.post(PATH, data={"assignment": "svc-static", "depth": "static", **fields}, files=files,
                            headers={KEY_HEADER: key} if key is not None else {})


def _recorded(server, check_id: str) -> dict:
    """What the store and the reports folder hold for a job id, read directly."""
    with sqlite3.connect(server.store) as db:
        return {"deliveries": db.execute("SELECT COUNT(*) FROM deliveries WHERE job_id = ?", (check_id,)).fetchone()[0],
                "files": db.execute("SELECT COUNT(*) FROM files WHERE job_id = ?", (check_id,)).fetchone()[0],
                "reports": (server.workdir / "grader-reports" / check_id).exists()}


def test_a_static_self_check_round_trip_returns_the_students_results_and_records_no_grade(server):
    before = server.jobs()
    results = submit(ADA / "notebook.ipynb", server.url, key=KEY, depth="static", assignment="svc-static")
    assert (results["status"], results["depth"], results["assignment"]) == ("checked", "static", "svc-static")
    assert [item["id"] for item in results["items"]] == ["comments", "cells"]
    assert [test["status"] for test in results["tests"]] == ["passed", "passed"]
    assert (results["score"], results["max_score"], results["passed"]) == (15, 15, True)
    assert "1001" not in str(results) and "Ada" not in str(results)  # no student's name: the check has none
    # not a submission: not counted, not addressable as one, no report, no gradebook, nothing to send
    assert server.jobs() == before
    assert server.signed("GET", f"/v1/submissions/{results['id']}").status_code == 404
    page = server.http.get(f"/submissions/{results['id']}/results.json")
    assert page.status_code == 404 and page.json()["error"]["code"] == "unknown_job"
    assert _recorded(server, results["id"]) == {"deliveries": 0, "files": 0, "reports": False}
    assert not list((server.workdir / "grader-reports").glob("**/gradebook.csv"))
    metrics = server.http.get("/v1/metrics").text
    assert re.search(r'grader_selfchecks\{status="graded"\} [1-9]', metrics)
    assert "grader_submit_to_graded_seconds_count 0.0" in metrics
    # polled again, the same answer
    again = server.http.get(f"{PATH}/{results['id']}").json()
    assert again["tests"] == results["tests"] and again["status"] == "checked"


def test_a_hidden_item_stays_hidden_in_a_self_check(server):
    results = submit(ADA / "notebook.ipynb", server.url, key=KEY.replace("static", "hidden"), depth="static",
                     assignment="svc-hidden")
    assert [item["id"] for item in results["items"]] == ["cells"]
    assert "secret-probe" not in str(results) and "own probe" not in str(results)
    assert [test["name"] for test in results["tests"]][1] == "1 check not listed here"
    assert results["score"] == 8  # the hidden points are in the sum, as results.json serves them
    assert results["pass_rule"] == "every required item (1 not listed) passes"


def test_a_failing_notebook_is_checked_and_says_which_item_failed_and_why(server):
    results = submit(DI / "notebook.ipynb", server.url, key=KEY, depth="static", assignment="svc-static")
    assert results["passed"] is False and results["items"][0]["status"] == "failed"
    assert "comment_coverage = 0%" in results["items"][0]["evidence"] and results["tests"][0]["status"] == "failed"


def test_a_github_link_is_fetched_by_the_server_and_checked(server):
    results = submit("https://github.com/ada/cnn", server.url, key=KEY, depth="static", assignment="svc-static")
    assert results["status"] == "checked" and results["passed"] is True


def test_a_link_that_cannot_be_fetched_fails_the_check_with_the_reason(server):
    with pytest.raises(GraderError) as caught:
        submit("https://github.com/ada/missing", server.url, key=KEY, depth="static", assignment="svc-static")
    assert "could not be cloned" in caught.value.what and "public" in caught.value.what and caught.value.fix


def test_a_missing_key_is_401_and_a_wrong_one_403_both_with_the_fix(server):
    before = server.jobs()
    error = _error(_post(server, key=None, notebook=notebook_bytes()), 401, "selfcheck_unauthenticated")
    assert error["where"] == KEY_HEADER and "key your instructor gave" in error["fix"]
    wrong = "not-the-key-of-this-assignment-42"
    response = _post(server, key=wrong, notebook=notebook_bytes())
    error = _error(response, 403, "selfcheck_key_refused")
    assert "svc-static" in error["what"] and "copy the key" in error["fix"] and wrong not in response.text
    error = _error(_post(server, assignment="svc-evaluate", notebook=notebook_bytes()), 403, "selfcheck_closed")
    assert "LTI" in error["what"] and "--selfcheck-keys" in error["fix"]
    with pytest.raises(GraderError) as caught:  # the client says the same
        submit(ADA / "notebook.ipynb", server.url, key=wrong, depth="static", assignment="svc-static")
    assert "not the one of assignment 'svc-static'" in caught.value.what and caught.value.fix
    assert server.jobs() == before


def test_a_full_run_is_refused_and_so_is_a_dry_run_of_a_static_assignment(server):
    error = _error(_post(server, depth="full", notebook=notebook_bytes()), 422, "depth_not_offered")
    assert "the full run is the graded one" in error["what"] and "static" in error["fix"]
    error = _error(_post(server, depth="dry-run", notebook=notebook_bytes()), 422, "depth_not_offered")
    assert "static mode" in error["what"] and error["fix"] == "send depth=static"
    with pytest.raises(GraderError, match="cannot be checked on a server") as caught:
        submit(ADA / "notebook.ipynb", server.url, key=KEY, depth="full", assignment="svc-static")
    assert "hand the notebook in" in caught.value.fix


def test_hostile_uploads_get_the_usual_errors(server):
    before = server.jobs()
    error = _error(_post(server, notebook=b"\x89PNG\r\n\x1a\n" + b"\0" * 64), 422, "invalid_notebook")
    assert "not UTF-8" in error["what"]
    error = _error(_post(server, notebook=b'{"cells": "no"}'), 422, "invalid_notebook")
    assert "not a Jupyter notebook" in error["what"] or "nbformat" in error["what"]
    error = _error(_post(server, notebook=b"x" * (300 << 10)), 413, "too_large")
    assert "256,000" in error["what"] or "262,144" in error["what"]
    _error(_post(server), 422, "missing_notebook")
    error = _error(_post(server, link="https://gitlab.com/a/b"), 422, "invalid_link")
    assert "GitHub" in error["fix"]
    _error(_post(server, notebook=notebook_bytes(), link="https://github.com/ada/cnn"), 422, "invalid_submission")
    _error(server.http.post(PATH, json={"assignment": "svc-static"}, headers={KEY_HEADER: KEY}), 415,
           "unsupported_media_type")
    _error(_post(server, assignment="nope", notebook=notebook_bytes()), 404, "unknown_assignment")
    _error(server.http.get(f"{PATH}/0123"), 404, "unknown_job")
    sent_as_file = server.http.post(PATH, data={"assignment": "svc-static"}, headers={KEY_HEADER: KEY},
                                    files={"notebook": ("nb.ipynb", notebook_bytes()), "link": ("l.txt", b"x")})
    assert _error(sent_as_file, 422, "field_not_text")["where"] == "link"
    assert server.jobs() == before
    assert server.http.get("/v1/health").json()["selfchecks"]["queued"] == 0


def test_an_lti_upload_session_authorises_a_self_check_without_a_key(server):
    from grader.service.lti.config import no_registrations
    from grader.service.lti.keys import ToolKey
    from grader.service.lti.launch import Launch, Launcher

    key = ToolKey.load_or_create(server.workdir / "grader-lti-key.pem")
    launch = Launch(issuer="https://lms.example", client_id="c", deployment_id="d", user_id="u-7",
                    assignment="svc-evaluate",  # an assignment with no key: the course login is enough
                    lineitem="https://lms.example/lineitems/1")  # where a graded hand-in's score would go
    session = Launcher(no_registrations(), None, key, server.url, None).session(launch)
    results = submit(ADA / "notebook.ipynb", server.url, launch=session, depth="static")
    assert results["assignment"] == "svc-evaluate" and results["status"] == "checked"
    assert _recorded(server, results["id"]) == {"deliveries": 0, "files": 0, "reports": False}  # no passback
    forged = _post(server, key=None, notebook=notebook_bytes(), launch=session[:-4] + "AAAA")
    _error(forged, 401, "lti_launch_refused")


def test_the_key_never_reaches_the_log(server):
    submit(ADA / "notebook.ipynb", server.url, key=KEY, depth="static", assignment="svc-static")
    _post(server, key="a-wrong-key-that-must-not-be-logged", notebook=notebook_bytes())
    log = server.log.read_text(errors="replace")
    assert f"POST {PATH}" in log  # the access log is on
    assert KEY not in log and "a-wrong-key-that-must-not-be-logged" not in log


def test_self_checks_are_rate_limited_per_key_and_address(tmp_path):
    with start_server(tmp_path, "--selfcheck-keys", str(_keys(tmp_path, **{"svc-static": KEY})),
                      "--selfcheck-rate", "2/60") as server:
        for _ in range(2):
            assert _post(server, notebook=notebook_bytes()).status_code == 202
        response = _post(server, notebook=notebook_bytes())
        error = _error(response, 429, "rate_limited")
        assert 1 <= int(response.headers["retry-after"]) <= 60 and "self-checks" in error["what"]
        with pytest.raises(GraderError, match="Retry-After") as caught:
            submit(ADA / "notebook.ipynb", server.url, key=KEY, depth="static", assignment="svc-static")
        assert "try again in" in caught.value.fix
        # submissions have their own bucket: a student's hand-in is not held up by self-checks
        from tests.fixtures.service.harness import submission
        assert server.submit(submission("1001")).status_code == 202


def test_the_client_says_when_the_server_cannot_be_reached(tmp_path):
    with pytest.raises(GraderError, match="cannot reach the self-check server") as caught:
        submit(ADA / "notebook.ipynb", "http://127.0.0.1:9", key=KEY, depth="static", assignment="svc-static",
               timeout=5)
    assert caught.value.where == "http://127.0.0.1:9" and "server URL" in caught.value.fix
    with pytest.raises(GraderError, match="cannot read the notebook"):
        submit(tmp_path / "unsaved.ipynb", "http://127.0.0.1:9", key=KEY, depth="static", assignment="svc-static")
    with pytest.raises(GraderError, match="no self-check key") as caught:
        submit(ADA / "notebook.ipynb", "http://127.0.0.1:9", assignment="svc-static")
    assert "key=" in caught.value.fix


@pytest.mark.usefixtures("bwrap")
def test_a_dry_run_self_check_runs_the_notebook_in_the_sandbox(tmp_path, real_mnist_dir):
    rubrics = tmp_path / "rubrics"
    rubrics.mkdir()
    shutil.copy(ROOT / "rubrics" / "mnist-s4.yaml", rubrics)
    key = "selfcheck-key-for-mnist-s4-98765"
    with start_server(tmp_path / "serve", "--selfcheck-keys", str(_keys(tmp_path, **{"mnist-s4": key})),
                      "--data", str(real_mnist_dir), rubrics=rubrics) as server:
        started = time.monotonic()
        results = submit(GAP, server.url, key=key, assignment="mnist-s4", timeout=600)
        seconds = time.monotonic() - started
        assert (results["status"], results["depth"]) == ("checked", "dry-run"), results
        items = {item["id"]: item for item in results["items"]}
        assert items["gap"]["status"] == "passed"  # the model was built, so its structure is real
        assert items["accuracy"]["status"] == "not_judged" and "dry run" in items["accuracy"]["evidence"]
        assert results["passed"] is False and "accuracy" in results["not_judged"]
        assert server.jobs() == {"queued": 0, "running": 0, "graded": 0, "failed": 0}
        print(f"dry-run self-check through grade serve: {seconds:.1f} s")
        assert seconds < 300


def test_a_bad_key_file_stops_the_start_with_its_line(tmp_path):
    from grader.service.assignments import Assignments

    path = tmp_path / "keys.yaml"
    path.write_text(f"svc-static: {KEY}\nsvc-nope: {KEY}\n")
    with pytest.raises(GraderError, match="no assignment 'svc-nope'") as caught:
        Assignments(RUBRICS, path)
    assert caught.value.where == f"{path}:2" and "svc-static" in caught.value.fix
    path.write_text("svc-static: short\n")
    with pytest.raises(GraderError, match="at least 16 bytes") as caught:
        Assignments(RUBRICS, path)
    assert "short" not in caught.value.render() and "token_urlsafe" in caught.value.fix  # the key is never shown
    path.write_text(f"svc-static: {KEY}\n")
    assignment = Assignments(RUBRICS, path).get("svc-static")
    assert assignment.accepts(KEY) and not assignment.accepts(KEY + "x") and KEY not in repr(assignment)


def test_check_in_a_notebook_with_server_shows_the_servers_answer_as_its_card(server):
    """`check(server=...)`, as a student in Colab calls it: the same CheckResult as a local check, from the
    course's server."""
    from grader import check

    result = check(DI / "notebook.ipynb", server=server.url, key=KEY, depth="static", rubric="svc-static")
    assert (result.passed, result.score, result.max_score) == (False, 5, 15)
    assert [(item.id, item.status) for item in result.items] == [("comments", "failed"), ("cells", "passed")]
    assert "comment_coverage = 0%" in result.items[0].message
    card, text = result._repr_html_(), str(result)
    assert 'data-outcome="failed"' in card and "comment_coverage = 0%" in card and "\x1b[" not in card + text
    assert "5/15" in text.replace(" ", "") and "comment_coverage = 0%" in text
    with pytest.raises(GraderError) as refused:
        check(DI / "notebook.ipynb", server=server.url, key="not-the-key-0123456789", depth="static",
              rubric="svc-static")
    assert "key" in str(refused.value).lower()
