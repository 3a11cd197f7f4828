"""Lanes on the queue (grader/service/lanes.py): self-checks before everything, a fair share of workers across
assignments so one course's deadline burst does not hold up another, regrades after their assignment's
submissions, the GPU lane (jobs that need a GPU only on a node that declares one), the store migration that adds
lanes, and the per-lane metrics and self-check wait on a real server during a burst."""

from __future__ import annotations

import re
import shutil
import sqlite3
import time
from pathlib import Path

from grader.selfcheck_remote import KEY_HEADER, PATH
from grader.service import migrations
from grader.service.assignments import Assignments
from grader.service.store import SQLITE_MIGRATIONS, JobResult, NewJob, SQLiteStore, open_store
from tests.fixtures.service.harness import ADA, RUBRICS, notebook_bytes, start_server, submission
from tests.fixtures.service.stores import store  # noqa: F401 (the fixture: both backends)

KEY = "selfcheck-key-for-svc-static-0123"
DONE = JobResult(score=1.0, max_score=1.0, passed=True, sheet={}, report_dir="x")


def _new(assignment: str, student: str = "s", **kw) -> NewJob:
    return NewJob(student=student, assignment=assignment, source="api", notebook=b"{}", **kw)


def _drain(store, count: int, *, gpu: bool = False) -> list:
    """One worker: claim, complete, claim again; the jobs in the order it took them."""
    taken = []
    for _ in range(count):
        job = store.claim("w", lease=30, max_attempts=3, gpu=gpu)
        if job is None:
            break
        assert store.complete(job, "w", DONE)
        taken.append(job)
    return taken


def _deadline_burst(store) -> tuple[list, NewJob, list]:
    burst = [store.submit(_new("A", f"a{i}"))[0] for i in range(300)]
    check = store.submit(_new("A", "key:x", depth="static"))[0]
    others = [store.submit(_new("B", f"b{i}"))[0] for i in range(3)]
    return burst, check, others


def test_a_self_check_goes_before_a_300_submission_burst_and_another_course_is_not_behind_it(store):
    burst, check, others = _deadline_burst(store)
    order = [job.id for job in _drain(store, 8)]
    assert order[0] == check.id  # submitted after 300 uploads, taken first
    b_at = [order.index(job.id) for job in others]
    assert max(b_at) <= 6, f"B's jobs were taken at {b_at}: they waited behind A's burst"
    assert [job.id for job in _drain(store, 1000)] == [job.id for job in burst[4:]]  # the rest of A, oldest first


def test_two_workers_at_once_take_one_job_of_each_assignment(store):
    _deadline_burst(store)
    store.claim("w0", lease=30, max_attempts=3)  # the self-check
    first = store.claim("w1", lease=30, max_attempts=3)
    second = store.claim("w2", lease=30, max_attempts=3)  # A has one running, B none: B's turn
    assert {first.assignment, second.assignment} == {"A", "B"}


def test_a_regrade_waits_for_its_assignments_submissions_but_not_for_another_courses_burst(store):
    regrades = [store.submit(_new("B", f"r{i}", regrade=True))[0] for i in range(2)]
    burst = [store.submit(_new("A", f"a{i}"))[0] for i in range(50)]
    late = store.submit(_new("B", "late"))[0]  # a student of B hands in after the regrade was asked for
    order = [job.id for job in _drain(store, 6)]
    assert order.index(late.id) < order.index(regrades[0].id) < order.index(regrades[1].id) <= 5
    assert {job.lane for job in (store.get(late.id), store.get(regrades[0].id), store.get(burst[0].id))} == \
        {"submission", "regrade"}


def test_the_queue_position_counts_self_checks_and_the_assignments_own_line(store):
    a = [store.submit(_new("A", f"a{i}"))[0] for i in range(3)]
    b = store.submit(_new("B", "b"))[0]
    check = store.submit(_new("A", "key:x", depth="static"))[0]
    regrade = store.submit(_new("A", "r", regrade=True))[0]
    assert store.position(check) == 1
    assert [store.position(job) for job in a] == [2, 3, 4]  # the self-check goes first
    assert store.position(b) == 2 and store.position(regrade) == 5


def test_a_job_that_needs_a_gpu_is_claimed_only_by_a_node_that_declares_one(store):
    gpu_job = store.submit(_new("G", "g", needs_gpu=True))[0]
    cpu_job = store.submit(_new("A", "a"))[0]
    assert [job.id for job in _drain(store, 5, gpu=False)] == [cpu_job.id]  # the GPU job is left for a GPU node
    assert store.get(gpu_job.id).status == "queued"
    taken = store.claim("gpu-node", lease=30, max_attempts=3, gpu=True)
    assert taken.id == gpu_job.id and taken.needs_gpu
    other = store.submit(_new("A", "a2"))[0]
    assert store.claim("gpu-node", lease=30, max_attempts=3, gpu=True).id == other.id  # a GPU node takes any job


def test_an_expired_gpu_job_is_not_taken_over_by_a_node_without_one(store):
    store.submit(_new("G", "g", needs_gpu=True))
    assert store.claim("gpu-node", lease=-1, max_attempts=3, gpu=True) is not None  # its lease ran out at once
    assert store.claim("cpu-node", lease=30, max_attempts=3, gpu=False) is None
    assert store.claim("gpu-node-2", lease=30, max_attempts=3, gpu=True).attempts == 2


GPU_RUBRIC = """\
id: svc-gpu
title: "Lane tests: a rubric that requires a GPU"
mode: evaluate
limits: {gpu: required}
items:
  - id: accuracy
    title: At least 98% test accuracy (measured)
    fact: eval.accuracy
    ge: 98
    points: 10
"""


def _rubrics(folder: Path) -> Path:
    """svc-static, a second static assignment (another course) and an evaluate one that requires a GPU."""
    folder.mkdir()
    shutil.copy(RUBRICS / "svc-static.yaml", folder / "svc-static.yaml")
    other = (RUBRICS / "svc-static.yaml").read_text().replace("id: svc-static", "id: svc-other")
    (folder / "svc-other.yaml").write_text(other)
    (folder / "svc-gpu.yaml").write_text(GPU_RUBRIC)
    return folder


def test_the_rubrics_gpu_limit_puts_its_runs_in_the_gpu_lane(tmp_path):
    assignments = Assignments(_rubrics(tmp_path / "rubrics"))
    gpu, static = assignments.get("svc-gpu"), assignments.get("svc-static")
    assert gpu.needs_gpu() and gpu.needs_gpu("dry-run")
    assert not gpu.needs_gpu("static")  # a static self-check reads the notebook only: any node
    assert not static.needs_gpu()


def test_a_store_made_before_lanes_gains_them_self_checks_in_their_lane(tmp_path):
    before_lanes = [m for m in SQLITE_MIGRATIONS if m.version < 4]  # what the store had before the lanes' migration
    with sqlite3.connect(tmp_path / "grader.db") as db:
        db.execute(migrations.VERSION_TABLE)
        migrations.apply(db, 0, before_lanes, "old store")
        assert "lane" not in {row[1] for row in db.execute("PRAGMA table_info(jobs)")}
        for id_, depth in (("sub", None), ("check", "static")):
            db.execute("INSERT INTO jobs (id, student, assignment, source, status, submitted, depth) "
                       "VALUES (?, '1001', 'svc-static', 'api', 'queued', 1, ?)", (id_, depth))
    store = SQLiteStore(tmp_path / "grader.db")
    try:
        assert (store.get("sub").lane, store.get("check").lane) == ("submission", "selfcheck")
        assert not store.get("sub").needs_gpu
        assert store.claim("w", lease=30, max_attempts=3).id == "check"  # the migrated self-check goes first
        assert store.lane_counts()["submission"]["queued"] == 1
    finally:
        store.close()


def _selfcheck(server) -> str:
    response = server.http.post(PATH, data={"assignment": "svc-static", "depth": "static"},
                                files={"notebook": ("nb.ipynb", notebook_bytes())}, headers={KEY_HEADER: KEY})
    assert response.status_code == 202, response.text
    return response.json()["id"]


def _wait_checked(server, check_id: str, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while (state := server.http.get(f"{PATH}/{check_id}").json())["status"] not in ("checked", "failed"):
        assert time.monotonic() < deadline, f"self-check still {state['status']}\n{server.logs()}"
        time.sleep(0.05)
    return state


def _metric(text: str, name: str, **labels: str) -> float:
    selector = ",".join(f'{key}="{value}"' for key, value in labels.items())
    match = re.search(rf"^{re.escape(name)}\{{{re.escape(selector)}\}} (\S+)$", text, re.M)
    assert match, f"no {name}{{{selector}}} in the metrics"
    return float(match[1])


def _queued(server, assignment: str) -> int:
    with sqlite3.connect(server.store) as db:  # WAL: a reader beside the running server
        return db.execute("SELECT COUNT(*) FROM jobs WHERE assignment = ? AND status = 'queued'",
                          (assignment,)).fetchone()[0]


def test_on_a_server_a_self_check_and_another_course_overtake_a_300_upload_burst_and_lanes_show_in_the_metrics(
        tmp_path, real_mnist_dir):
    rubrics, work = _rubrics(tmp_path / "rubrics"), tmp_path / "serve"
    keys = tmp_path / "keys.yaml"
    keys.write_text(f"svc-static: {KEY}\n")
    work.mkdir()
    queue = SQLiteStore(work / "grader.db")  # the deadline: 300 uploads of one course accepted, waiting
    for i in range(300):
        queue.submit(NewJob(f"a{i}", "svc-static", "api", notebook_bytes(ADA)))
    queue.close()
    with start_server(work, "--rubrics", str(rubrics), "--selfcheck-keys", str(keys), "--workers", "1",
                      "--no-gpu") as server:
        gpu_job = server.submit(submission("g1", "svc-gpu", model=True)).json()["id"]
        other = server.submit(submission("b1", "svc-other")).json()["id"]
        answered, checks = [], []
        for _ in range(5):  # a student checking again and again while the burst is graded
            posted = time.monotonic()
            checks.append(_wait_checked(server, _selfcheck(server)))
            answered.append(time.monotonic() - posted)
        assert {check["status"] for check in checks} == {"checked"}
        assert server.wait(other)["status"] == "graded"
        waiting = _queued(server, "svc-static")
        with sqlite3.connect(server.store) as db:
            waits = [db.execute("SELECT started - submitted FROM jobs WHERE id = ?", (check["id"],)).fetchone()[0]
                     for check in checks]
            # uploads of the burst (all accepted before the first self-check) not started when each check started:
            # first in, first out would make this 0; the lanes put every self-check ahead of them
            overtaken = [db.execute("SELECT COUNT(*) FROM jobs WHERE assignment = 'svc-static' AND lane = "
                                    "'submission' AND (started IS NULL OR started > (SELECT started FROM jobs "
                                    "WHERE id = ?))", (check["id"],)).fetchone()[0] for check in checks]
        print(f"\nself-checks during a 300-upload burst (1 worker, static rubric): started "
              f"{', '.join(f'{w:.3f}' for w in waits)} s after their 202; answers polled "
              f"{', '.join(f'{a:.2f}' for a in answered)} s after posting; each went ahead of "
              f"{', '.join(map(str, overtaken))} waiting uploads; {waiting} still waiting now")
        assert 0 <= min(waits) and max(waits) < 5 and min(overtaken) >= 150, overtaken
        assert _queued(server, "svc-gpu") == 1  # --no-gpu: the GPU lane's job waits for a GPU node
        assert "GPU lane" not in server.logs()
        metrics = server.http.get("/v1/metrics").text
        assert _metric(metrics, "grader_lane_jobs", lane="selfcheck", status="graded") == 5
        graded = _metric(metrics, "grader_lane_jobs", lane="submission", status="graded")
        in_lane = sum(_metric(metrics, "grader_lane_jobs", lane="submission", status=status)
                      for status in ("queued", "running", "graded", "failed"))
        assert graded >= 2 and in_lane == 302  # the burst, the other course's and the GPU job
        assert _metric(metrics, "grader_lane_jobs", lane="regrade", status="queued") == 0
        assert _metric(metrics, "grader_lane_wait_seconds_count", lane="selfcheck") == 5
        assert _metric(metrics, "grader_lane_wait_seconds_bucket", lane="selfcheck", le="5.0") == 5
        assert 1 <= _metric(metrics, "grader_lane_wait_seconds_count", lane="submission") <= graded
        assert _metric(metrics, "grader_lane_wait_seconds_count", lane="regrade") == 0
    with start_server(work, "--rubrics", str(rubrics), "--data", str(real_mnist_dir),
                      "--gpu") as gpu_node:  # the same store, a node that says it has a GPU
        taken = gpu_node.wait(gpu_job, timeout=120)
        assert "1 worker(s) (and the GPU lane)" in gpu_node.logs()
    assert taken["attempts"] == 1  # claimed at last (its course's turn); with no GPU here its run fails, saying so
    print(f"the GPU lane's job on a --gpu node without one: {taken['status']}: {taken['reason']}")
    assert taken["status"] == "graded" or "GPU" in taken["reason"], taken["reason"]


# The same fragments on PostgreSQL (the several-node store plugs them into its claim): same jobs, same order.

def test_postgresql_and_sqlite_claim_in_the_same_order(tmp_path, postgres):
    """The same jobs in both stores, taken by a node without a GPU and then by one with: the same order."""
    kinds = [("A", {})] * 30 + [("A", {"depth": "static"})] + [("B", {})] * 3 + [("B", {"regrade": True}),
                                                                               ("G", {"needs_gpu": True}),
                                                                               ("A", {"regrade": True})]
    orders = []
    for spec in (tmp_path / "grader.db", postgres.create_database()):
        store = open_store(spec)
        try:
            names = {store.submit(_new(assignment, f"s{i}", **extra))[0].id: f"s{i}"
                     for i, (assignment, extra) in enumerate(kinds)}
            taken = []
            for step in range(len(kinds)):
                taken += [names[job.id] for job in _drain(store, 1, gpu=step >= 30)]
            orders.append(taken)
        finally:
            store.close()
    assert orders[0] == orders[1] and len(orders[0]) == len(kinds)
    assert orders[0][0] == "s30" and orders[0][-1] in ("s34", "s36")  # the self-check first, a regrade last
    assert "s35" in orders[0][30:32]  # the GPU job, as soon as a GPU node claims
