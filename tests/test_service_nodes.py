"""Several `grade serve` nodes on one PostgreSQL store (a real server, tests/pg_server.py): they share the queue, the
LTI key and the reports folder; one SIGKILLed mid-run loses nothing, and no job is graded twice."""

from __future__ import annotations

import itertools
import os
import signal
import time

import httpx
import psycopg
import pytest

from grader.errors import GraderError
from grader.service.settings import ServiceSettings
from tests.fixtures.service.harness import start_server, submission

JOBS = 24


def _running(url: str, pid: int, patience: float = 1.0) -> int:
    """How many jobs the server with this pid holds, polled for up to `patience` seconds until it holds one."""
    until = time.monotonic() + patience
    with psycopg.connect(url, autocommit=True) as db:
        while True:
            held = db.execute("SELECT COUNT(*) FROM jobs WHERE status = 'running' AND lease_owner LIKE %s",
                              (f"%:{pid}:%",)).fetchone()[0]
            if held or time.monotonic() > until:
                return held
            time.sleep(0.005)


def test_two_nodes_one_killed_mid_run_grade_every_accepted_job_exactly_once(tmp_path, postgres):
    url = postgres.create_database()
    reports = tmp_path / "shared-reports"  # the folder every node mounts
    common = ("--rate", "1000/60", "--lease", "3", "--out", str(reports), "--workers", "2")
    a = start_server(tmp_path / "a", *common, store=url)
    b = start_server(tmp_path / "b", *common, store=url)
    try:
        assert a.http.get("/.well-known/jwks.json").json() == b.http.get("/.well-known/jwks.json").json()
        nodes = itertools.cycle([a, b])
        accepted, running = [], 0
        while not running and len(accepted) < JOBS:  # until a is caught grading
            accepted.append(next(nodes).submit(submission(f"n{len(accepted)}")).json()["id"])
            if _running(url, a.proc.pid):
                os.killpg(a.proc.pid, signal.SIGSTOP)  # frozen mid-grading: it can complete nothing from here on
                running = _running(url, a.proc.pid, patience=0)
                if not running:  # it finished just before the stop
                    os.killpg(a.proc.pid, signal.SIGCONT)
        a.kill()  # mid-run: a job of a's running, others queued
        accepted += [b.submit(submission(f"m{i}")).json()["id"] for i in range(JOBS - len(accepted))]
        states = [b.wait(job, timeout=180) for job in accepted]
        assert {s["status"] for s in states} == {"graded"}, b.logs()
        report = b.http.get(httpx.URL(states[0]["links"]["report_html"]).path)  # graded by either node, served by b
        assert report.status_code == 200 and "n0" in report.text
    finally:
        a.kill()
        b.stop()
    with psycopg.connect(url) as db:
        graded = dict(db.execute("SELECT job_id, COUNT(*) FROM events WHERE kind = 'graded' GROUP BY job_id"))
        total = db.execute("SELECT COUNT(*) FROM jobs").fetchone()[0]
        retaken = db.execute("SELECT COUNT(DISTINCT job_id) FROM events WHERE kind = 'claimed' AND attempt = 2"
                             ).fetchone()[0]
    assert running >= 1, "node a was never seen grading: the kill did not interrupt a job"
    assert total == JOBS and graded == {job: 1 for job in accepted}  # 0 lost, 0 duplicated
    assert retaken >= running  # the killed node's jobs were taken over once their lease ran out


def test_a_postgresql_store_without_a_shared_reports_folder_is_refused():
    with pytest.raises(GraderError) as err:
        ServiceSettings(secret=b"x" * 32, store="postgresql://grader@db.example.edu/grader")
    assert "not given: a PostgreSQL store needs the reports folder" in err.value.what and err.value.where == "--out"
    assert "every node" in err.value.fix and "docs/service.md" in err.value.fix
