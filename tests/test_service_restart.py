"""The durable queue across SIGKILL: every job accepted with a 202 is graded exactly once after a restart,
and a job killed mid-grading runs again from the start."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time

from tests.fixtures.service.harness import ROOT, RUBRICS, SECRET, start_server, submission


def _events(store, job_id: str) -> list[tuple[str, int]]:
    db = sqlite3.connect(store)
    try:
        return db.execute("SELECT kind, attempt FROM events WHERE job_id = ? ORDER BY rowid", (job_id,)).fetchall()
    finally:
        db.close()


def test_a_job_killed_mid_grading_runs_again_and_is_graded_once(tmp_path, real_mnist_dir, bwrap):
    env = {"GRADER_DATA": str(real_mnist_dir)}
    first = start_server(tmp_path, env=env)
    try:
        job = first.submit(submission("k1", "svc-evaluate", model=True)).json()["id"]
        first.wait(job, timeout=60, until=("running",))  # claimed; its scratch folder comes once MNIST is staged
        scratch = tmp_path / "grader-scratch"
        deadline = time.monotonic() + 60
        while not (folders := list(scratch.iterdir()) if scratch.is_dir() else []) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert [p.name.split("-")[0] for p in folders] == [job]  # the sandboxed evaluation has started
    finally:
        first.kill()
    with start_server(tmp_path, env=env, port=int(first.url.rsplit(":", 1)[1])) as second:
        assert second.url == first.url  # the status URLs handed out stay valid
        state = second.wait(job, timeout=120)
    assert state["status"] == "graded" and state["attempts"] == 2 and state["score"] == 85
    assert _events(second.store, job) == [("submitted", 0), ("claimed", 1), ("requeued", 1), ("claimed", 2),
                                          ("graded", 2)]
    assert state["links"]["report_html"]
    assert (tmp_path / "grader-reports" / job / "attempt-2").is_dir()
    assert list((tmp_path / "grader-scratch").iterdir()) == []  # the killed attempt's files were cleared


def test_jobs_queued_when_the_server_is_killed_are_all_graded_exactly_once(tmp_path):
    first = start_server(tmp_path, "--rate", "100/60")
    try:
        accepted = [first.submit(submission(f"q{i}")).json()["id"] for i in range(15)]
    finally:
        first.kill()  # right after the last 202: most jobs are still queued, one may be running
    with start_server(tmp_path) as second:
        states = [second.wait(job) for job in accepted]
    assert {s["status"] for s in states} == {"graded"}
    db = sqlite3.connect(second.store)
    graded = dict(db.execute("SELECT job_id, COUNT(*) FROM events WHERE kind = 'graded' GROUP BY job_id").fetchall())
    total = db.execute("SELECT COUNT(*) FROM jobs").fetchone()[0]
    db.close()
    assert total == 15 and graded == {job: 1 for job in accepted}


def test_sigterm_stops_the_server_cleanly(tmp_path):
    server = start_server(tmp_path)
    server.wait(server.submit(submission("t1")).json()["id"])
    started = time.monotonic()
    assert server.stop() == 0 and time.monotonic() - started < 15


def test_a_second_server_on_the_same_store_is_refused(tmp_path):
    with start_server(tmp_path) as running:
        done = subprocess.run([sys.executable, "-m", "grader", "serve", "--port", "0", "--rubrics", str(RUBRICS),
                               "--store", str(running.store)], cwd=ROOT, capture_output=True, text=True, timeout=60,
                              env={**os.environ, "GRADER_WEBHOOK_SECRET": SECRET})
    assert done.returncode == 2
    assert f"{running.store}: the store is in use by grade serve (pid {running.proc.pid})" in done.stderr
    assert "another --store" in done.stderr
