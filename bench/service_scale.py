"""Several nodes: two `grade serve` processes on one PostgreSQL store, signed submissions spread over both (as a load
balancer would), one node SIGKILLed twice and restarted; then every submission checked to be graded exactly once.
Then a deadline burst: --deadline-burst submissions queued at once while students self-check, and the self-checks'
time from POST to checked.

    python bench/service_scale.py                 # 2000 submissions, node a killed twice, a 300-submission burst
    python bench/service_scale.py --n 400 --deadline-burst 100
    python bench/service_scale.py --store postgresql://USER@HOST/DB   # an existing, empty database

Without --store, a throwaway PostgreSQL server is started in a temporary folder (Debian's `postgresql` binaries,
as the tests do: tests/pg_server.py). Everything stays on 127.0.0.1. Static mode: the bench measures the queue
and the nodes, not grading.

A POST that fails because its node is down is sent again, re-signed, with the same delivery id, to the other node
(a load balancer's failover and an LMS's retry). After the run the store is read: one job per delivery (0
duplicated), every job graded (0 lost), exactly one `graded` event per job. Latency is from the client's first POST
to the job's `finished` time in the store (same machine, same clock). The self-check figure says which claim order
the store had (FIFO, or lanes once the store has a `lane` column).
"""

from __future__ import annotations

import argparse
import base64
import itertools
import json
import os
import shutil
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from pathlib import Path

import httpx
import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.service_load import NOTEBOOK, RUBRIC, SECRET, Server, percentile  # noqa: E402
from grader.selfcheck_remote import KEY_HEADER, PATH as SELFCHECK_PATH  # noqa: E402
from grader.service.signing import signed_headers  # noqa: E402
from grader.service.store import NewJob  # noqa: E402
from grader.service.store_postgres import PostgresStore  # noqa: E402

SELFCHECK_KEY = uuid.uuid4().hex


class Cluster:
    """The nodes, and a client that sends each submission to one and fails over to the next while it is down."""

    def __init__(self, nodes: list[Server], deadline: float):
        self.nodes, self.deadline = nodes, deadline
        self.first_post: dict[str, float] = {}
        self.job_of: dict[str, str] = {}
        self.failovers = 0
        self.lock = threading.Lock()

    def submit(self, index: int, delivery: str, student: str) -> None:
        body = json.dumps({"student_id": student, "assignment": "bench-static",
                           "notebook": base64.b64encode(NOTEBOOK.read_bytes()).decode()}).encode()
        with httpx.Client(timeout=30, trust_env=False) as client:
            for node in itertools.islice(itertools.cycle(self.nodes), index % len(self.nodes), None):
                if time.monotonic() > self.deadline:
                    raise RuntimeError(f"submission {student} never got its 202")
                with self.lock:
                    self.first_post.setdefault(delivery, time.time())
                try:
                    headers = signed_headers(SECRET.encode(), "POST", "/v1/submissions", body, delivery=delivery)
                    response = client.post(f"{node.url}/v1/submissions", content=body,
                                           headers={"Content-Type": "application/json", **headers})
                except httpx.TransportError:  # this node is down: the next one
                    with self.lock:
                        self.failovers += 1
                    time.sleep(0.05)
                    continue
                if response.status_code == 202:
                    with self.lock:
                        self.job_of[delivery] = response.json()["id"]
                    return
                time.sleep(0.2)

    def selfcheck(self, index: int) -> tuple[str, float]:
        """One self-check; (its id, when it was posted)."""
        node = self.nodes[index % len(self.nodes)]
        posted = time.time()
        response = httpx.post(f"{node.url}{SELFCHECK_PATH}", data={"assignment": "bench-static", "depth": "static"},
                              files={"notebook": ("nb.ipynb", NOTEBOOK.read_bytes())},
                              headers={KEY_HEADER: SELFCHECK_KEY}, timeout=30, trust_env=False)
        response.raise_for_status()
        return response.json()["id"], posted


def _pending(db) -> int:
    return db.execute("SELECT COUNT(*) FROM jobs WHERE status IN ('queued', 'running')").fetchone()[0]


def queue_at_once(url: str, deliveries: list[str]) -> None:
    """The deadline burst: submissions written to the store in one go, as if they had all arrived in the same
    second. Through HTTP they would not queue up here: on this 2-core machine the nodes grade a static submission as
    fast as they accept one, so a self-check would never wait behind anything (the first phase measures intake)."""
    store = PostgresStore(url)
    try:
        for index, delivery in enumerate(deliveries):
            store.submit(NewJob(student=f"burst-{index:05d}", assignment="bench-static", source="api",
                                notebook=NOTEBOOK.read_bytes(), delivery=delivery))
    finally:
        store.close()


def _while_grading(url: str, node: Server, patience: float = 5.0) -> None:
    """Return once `node` holds a running job (so that its kill interrupts grading), or after `patience` seconds."""
    until = time.monotonic() + patience
    with psycopg.connect(url, autocommit=True) as db:
        while time.monotonic() < until and not db.execute(
                "SELECT 1 FROM jobs WHERE status = 'running' AND lease_owner LIKE %s LIMIT 1",
                (f"%:{node.proc.pid}:%",)).fetchone():
            time.sleep(0.005)


def _wait_graded(url: str, deadline: float) -> None:
    with psycopg.connect(url, autocommit=True) as db:
        while _pending(db) and time.monotonic() < deadline:
            time.sleep(0.2)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=2000, help="submissions (default 2000)")
    parser.add_argument("--burst", type=int, default=100, help="submissions sent at once (default 100)")
    parser.add_argument("--pause", type=float, default=0.5, help="seconds between bursts (default 0.5)")
    parser.add_argument("--kills", type=int, default=2, help="SIGKILLs of node a, each restarted (default 2)")
    parser.add_argument("--workers", type=int, default=2, help="grading workers per node (default 2)")
    parser.add_argument("--deadline-burst", type=int, default=300,
                        help="submissions sent at once while self-checks run (default 300; 0: skip)")
    parser.add_argument("--store", help="an empty PostgreSQL database (default: a throwaway server)")
    parser.add_argument("--deadline", type=float, default=1800, help="give up after this many seconds")
    parser.add_argument("--keep", type=Path, help="keep the logs and reports in this folder")
    args = parser.parse_args()

    workdir = args.keep or Path(tempfile.mkdtemp(prefix="service-scale-"))
    if args.store:
        database = nullcontext(args.store)
    else:
        from tests.pg_server import postgres_server

        database = postgres_server()
    with database as found:
        url = found if isinstance(found, str) else found.create_database()
        return run(args, workdir, url)


def run(args: argparse.Namespace, workdir: Path, url: str) -> int:
    keys = workdir / "selfcheck-keys.yaml"
    keys.parent.mkdir(parents=True, exist_ok=True)
    keys.write_text(f"bench-static: {SELFCHECK_KEY}\n")
    extra = ("--out", str(workdir / "reports"), "--lease", "5", "--selfcheck-keys", str(keys),
             "--selfcheck-rate", "100000/60")
    nodes = []
    for name in ("a", "b"):
        (workdir / name / "rubrics").mkdir(parents=True, exist_ok=True)
        (workdir / name / "rubrics" / "bench-static.yaml").write_text(RUBRIC)
        nodes.append(Server(workdir / name, args.workers, store=url, extra=extra))
    deadline = time.monotonic() + args.deadline
    cluster = Cluster(nodes, deadline)
    broken: list[BaseException] = []
    kills_done: list[float] = []
    checks: list[tuple[str, float]] = []
    depth: list[int] = []  # jobs waiting or running when each self-check was sent
    try:
        for node in nodes:
            node.start()
        deliveries = [uuid.uuid4().hex for _ in range(args.n)]
        kill_at = [round(args.n * (k + 1) / (args.kills + 1)) for k in range(args.kills)]

        def killer() -> None:
            try:
                for target in kill_at:
                    while len(cluster.job_of) < target and time.monotonic() < deadline:
                        time.sleep(0.01)
                    _while_grading(url, nodes[0])
                    nodes[0].kill()
                    kills_done.append(time.time())
                    print(f"  SIGKILL of node a after {len(cluster.job_of)} accepted", flush=True)
                    time.sleep(0.5)
                    nodes[0].start()
            except BaseException as exc:  # a restart that fails ends the run
                broken.append(exc)

        started = time.time()
        kill_thread = threading.Thread(target=killer, daemon=True)
        kill_thread.start()
        with ThreadPoolExecutor(max_workers=16) as pool:
            for start in range(0, args.n, args.burst):
                list(pool.map(lambda i: cluster.submit(i, deliveries[i], f"student-{i:05d}"),
                              range(start, min(args.n, start + args.burst))))
                time.sleep(args.pause)
        kill_thread.join(max(0.0, deadline - time.monotonic()))
        print(f"  {len(cluster.job_of)} accepted in {time.time() - started:.1f} s; waiting for the grades", flush=True)
        _wait_graded(url, deadline)

        burst = [uuid.uuid4().hex for _ in range(args.deadline_burst)]
        if burst:
            print(f"  deadline burst: {len(burst)} submissions queued at once, self-checks meanwhile", flush=True)
            queue_at_once(url, burst)
            with psycopg.connect(url, autocommit=True) as db:
                while _pending(db) and time.monotonic() < deadline:
                    depth.append(_pending(db))
                    checks.append(cluster.selfcheck(len(checks)))
                    time.sleep(0.25)
            _wait_graded(url, deadline)
    except RuntimeError as exc:
        broken.append(exc)
    finally:
        for node in nodes:
            node.stop()
    if broken:
        print(f"the run broke off: {broken[0]}; logs in {workdir}", file=sys.stderr)
        return 2
    return report(args, url, workdir, cluster, deliveries + burst, set(deliveries), started, checks, depth,
                  len(kills_done))


def report(args, url, workdir, cluster, deliveries, main_deliveries, started, checks, depth, kills) -> int:
    with psycopg.connect(url) as db:
        jobs = db.execute("SELECT id, delivery, status, finished FROM jobs WHERE depth IS NULL").fetchall()
        graded = dict(db.execute("SELECT job_id, COUNT(*) FROM events WHERE kind = 'graded' GROUP BY job_id"))
        requeued = db.execute("SELECT COUNT(DISTINCT job_id) FROM events WHERE kind = 'requeued'").fetchone()[0]
        retaken = db.execute("SELECT COUNT(DISTINCT job_id) FROM events WHERE kind = 'claimed' AND attempt > 1"
                             ).fetchone()[0]
        checked = dict(db.execute("SELECT id, finished FROM jobs WHERE depth IS NOT NULL AND status = 'graded'"))
        lanes = "lane" in {row[0] for row in db.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'jobs'")}
    by_delivery = {delivery: (job_id, status, finished) for job_id, delivery, status, finished in jobs}
    lost = [d for d in deliveries if d not in by_delivery or by_delivery[d][1] != "graded"]
    duplicated = len(jobs) - len(set(deliveries))
    mismatched = [d for d in deliveries if d in cluster.job_of and by_delivery.get(d, (None,))[0] != cluster.job_of[d]]
    graded_twice = [j for j, n in graded.items() if n != 1]
    latencies = [by_delivery[d][2] - cluster.first_post[d] for d in main_deliveries
                 if d in by_delivery and by_delivery[d][2]]
    last = max(by_delivery[d][2] for d in main_deliveries if d in by_delivery and by_delivery[d][2])
    check_latencies = [checked[job] - posted for job, posted in checks if job in checked]

    print(f"\ngrade serve, two nodes on one PostgreSQL: {args.n} signed submissions in bursts of {args.burst}, "
          f"{args.workers} workers per node, static mode, {kills} SIGKILLs + restarts of node a "
          f"({os.cpu_count()} CPUs)")
    print(f"  jobs in the store      {len(jobs)} for {len(set(deliveries))} deliveries (with the deadline burst's)")
    print(f"  lost                   {len(lost)}")
    print(f"  duplicated             {duplicated} (and {len(mismatched)} replies naming another job)")
    print(f"  graded more than once  {len(graded_twice)}")
    print(f"  taken over after kills {retaken} job(s) claimed again ({requeued} requeued at a start)")
    print(f"  POSTs failed over      {cluster.failovers} (node down)")
    if latencies:
        print(f"  throughput             {len(latencies) / (last - started):.1f} graded/s "
              f"(first POST to last grade: {last - started:.1f} s)")
        print(f"  POST to graded         p50 {percentile(latencies, 50):.2f} s, p95 {percentile(latencies, 95):.2f} s, "
              f"p99 {percentile(latencies, 99):.2f} s")
    if checks:
        order = "lanes (self-checks first)" if lanes else "FIFO: this store has no lanes"
        print(f"  self-checks in the burst {len(check_latencies)} of {len(checks)} checked; POST to checked "
              f"p50 {percentile(check_latencies, 50):.2f} s, p95 {percentile(check_latencies, 95):.2f} s "
              f"(claim order: {order}); jobs waiting or running meanwhile: max {max(depth)}, median "
              f"{percentile(depth, 50)}" if check_latencies else f"  self-checks: none checked of {len(checks)}")
    ok = not lost and duplicated == 0 and not mismatched and not graded_twice and len(check_latencies) == len(checks)
    print("  result                 " + ("OK: every submission graded exactly once" if ok else "FAILED"))
    if ok and not args.keep:
        shutil.rmtree(workdir)
    else:
        print(f"  logs and reports       {workdir}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
