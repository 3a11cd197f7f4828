"""Load and kill test of `grade serve`: signed submissions in bursts, the server SIGKILLed mid-run and
restarted, then every submission checked to be graded exactly once.

    python bench/service_load.py                       # 500 submissions, 2 kills, static mode
    python bench/service_load.py --count 100 --kills 1 --workers 1

Everything stays on 127.0.0.1: the server, the client, the callback receiver.
Bounded: --count submissions, and the whole run gives up after --deadline seconds.

Each submission has its own delivery id and student; a POST that fails because the
server is down is sent again, re-signed, with the same delivery id, until it gets its
202 (that is the LMS retry the idempotency exists for). After the run the store is
read directly: one job per delivery (0 duplicated), every job graded (0 lost),
exactly one `graded` event per job (graded once, however often it was started).
Latency is from the client's first POST of a submission to the job's `finished`
time in the store (same clock). Callbacks are at-least-once, so duplicates there
are counted, not failed.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from grader.service.signing import signed_headers  # noqa: E402

NOTEBOOK = ROOT / "examples" / "submissions" / "Ada Good_1001_assignsubmission_file_" / "notebook.ipynb"
SECRET = uuid.uuid4().hex + uuid.uuid4().hex
RUBRIC = """\
id: bench-static
title: "Load test: commented cells (static)"
mode: static
items:
  - {id: comments, title: Every code cell is commented, fact: notebook.comment_coverage, ge: 1.0, points: 10}
  - {id: cells, title: At least two code cells, fact: notebook.code_cells, ge: 2, points: 5}
"""


class Callbacks:
    """Receives the server's callbacks; counts them per job."""

    def __init__(self):
        self.by_job: dict[str, int] = {}
        lock = threading.Lock()
        seen = self.by_job

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with lock:
                    seen[body["id"]] = seen.get(body["id"], 0) + 1
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


class Server:
    """One `grade serve`: on workdir/grader.db, or on `store` (a PostgreSQL URL) with `extra` options."""

    def __init__(self, workdir: Path, workers: int, store: str = "", extra: tuple[str, ...] = ()):
        self.workdir, self.workers, self.port, self.proc = workdir, workers, 0, None
        self.store, self.extra = store or str(workdir / "grader.db"), extra
        self.starts = 0

    def start(self) -> None:
        log = self.workdir / f"server-{self.starts}.log"
        self.starts += 1
        env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
        env["GRADER_WEBHOOK_SECRET"] = SECRET
        with open(log, "wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "grader", "serve", "--host", "127.0.0.1", "--port", str(self.port),
                 "--rubrics", str(self.workdir / "rubrics"), "--store", self.store,
                 "--workers", str(self.workers), "--rate", "100000/60", "--log-level", "warning", *self.extra],
                cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 120  # a loaded 2-core machine can take a while to import everything
        while True:
            found = re.search(r"listening on http://127\.0\.0\.1:(\d+)", log.read_text(errors="replace"))
            if found:
                self.port = int(found[1])
                break
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the server did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.05)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def kill(self) -> None:
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))]  # nearest rank


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=500, help="submissions (default 500)")
    parser.add_argument("--burst", type=int, default=50, help="submissions sent at once (default 50)")
    parser.add_argument("--pause", type=float, default=1.0, help="seconds between bursts (default 1)")
    parser.add_argument("--kills", type=int, default=2, help="SIGKILLs of the server mid-run (default 2)")
    parser.add_argument("--workers", type=int, default=2, help="the server's grading workers (default 2)")
    parser.add_argument("--deadline", type=float, default=900, help="give up after this many seconds (default 900)")
    parser.add_argument("--keep", type=Path, help="keep the store and logs in this folder")
    args = parser.parse_args()

    workdir = args.keep or Path(tempfile.mkdtemp(prefix="service-load-"))
    (workdir / "rubrics").mkdir(parents=True, exist_ok=True)
    (workdir / "rubrics" / "bench-static.yaml").write_text(RUBRIC)
    notebook = NOTEBOOK.read_bytes()
    callbacks = Callbacks()
    server = Server(workdir, args.workers)
    deadline = time.monotonic() + args.deadline
    broken: list[BaseException] = []

    try:
        server.start()
        deliveries = [uuid.uuid4().hex for _ in range(args.count)]
        first_post: dict[str, float] = {}
        job_of: dict[str, str] = {}
        retries = [0]
        statuses: dict[int, int] = {}
        lock = threading.Lock()

        def submit(index: int) -> None:
            delivery = deliveries[index]
            body = json.dumps({"student_id": f"student-{index:04d}", "assignment": "bench-static",
                               "notebook": base64.b64encode(notebook).decode(), "callback_url": callbacks.url}).encode()
            with httpx.Client(timeout=30, trust_env=False) as client:
                while time.monotonic() < deadline and not broken:
                    with lock:
                        first_post.setdefault(delivery, time.time())
                    try:
                        headers = signed_headers(SECRET.encode(), "POST", "/v1/submissions", body,
                                                 delivery=delivery)  # signed at each try
                        response = client.post(f"{server.url}/v1/submissions", content=body,
                                               headers={"Content-Type": "application/json", **headers})
                    except httpx.TransportError:  # the server is down (killed): an LMS retries the same delivery
                        with lock:
                            retries[0] += 1
                        time.sleep(0.2)
                        continue
                    with lock:
                        statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
                    if response.status_code == 202:
                        with lock:
                            job_of[delivery] = response.json()["id"]
                        return
                    time.sleep(0.2)
            raise RuntimeError(f"submission {index} never got its 202" + (f": {broken[0]}" if broken else ""))

        kill_at = [round(args.count * (k + 1) / (args.kills + 1)) for k in range(args.kills)]
        kills_done: list[float] = []

        def killer() -> None:
            try:
                for target in kill_at:
                    while len(job_of) < target and time.monotonic() < deadline:
                        time.sleep(0.01)
                    server.kill()
                    kills_done.append(time.time())
                    print(f"  SIGKILL after {len(job_of)} accepted", flush=True)
                    time.sleep(0.5)
                    server.start()
            except BaseException as exc:  # a restart that fails must end the run, not leave the clients retrying
                broken.append(exc)

        started = time.time()
        kill_thread = threading.Thread(target=killer, daemon=True)
        kill_thread.start()
        with ThreadPoolExecutor(max_workers=16) as pool:
            for start in range(0, args.count, args.burst):
                list(pool.map(submit, range(start, min(args.count, start + args.burst))))
                time.sleep(args.pause)
        kill_thread.join(max(0.0, deadline - time.monotonic()))
        print(f"  {len(job_of)} accepted in {time.time() - started:.1f} s; waiting for the grades", flush=True)

        store = workdir / "grader.db"
        while time.monotonic() < deadline:
            db = sqlite3.connect(store)
            pending = db.execute("SELECT COUNT(*) FROM jobs WHERE status IN ('queued', 'running')").fetchone()[0]
            db.close()
            if pending == 0 and len(callbacks.by_job) >= len(set(job_of.values())):
                break
            time.sleep(0.2)
    except RuntimeError as exc:  # a submission that never got its 202
        broken.append(exc)
    finally:
        server.stop()
    if broken:
        print(f"the run broke off: {broken[0]}; store and logs in {workdir}", file=sys.stderr)
        return 2

    db = sqlite3.connect(store)
    jobs = db.execute("SELECT id, delivery, status, finished FROM jobs").fetchall()
    graded_events = dict(db.execute("SELECT job_id, COUNT(*) FROM events WHERE kind = 'graded' "
                                    "GROUP BY job_id").fetchall())
    requeued = db.execute("SELECT COUNT(DISTINCT job_id) FROM events WHERE kind = 'requeued'").fetchone()[0]
    db.close()
    by_delivery = {delivery: (job_id, status, finished) for job_id, delivery, status, finished in jobs}
    lost = [d for d in deliveries if d not in by_delivery or by_delivery[d][1] != "graded"]
    duplicated = len(jobs) - len(set(deliveries))
    mismatched = [d for d in deliveries if d in job_of and by_delivery.get(d, (None,))[0] != job_of[d]]
    graded_twice = [j for j, n in graded_events.items() if n != 1]
    latencies = [by_delivery[d][2] - first_post[d] for d in deliveries if d in by_delivery and by_delivery[d][2]]
    last = max(finished for _, _, _, finished in jobs if finished)
    callbacks_missing = len(set(job_of.values()) - set(callbacks.by_job))
    callback_repeats = sum(n - 1 for n in callbacks.by_job.values())

    print(f"\ngrade serve under load: {args.count} signed submissions in bursts of {args.burst}, "
          f"{args.workers} workers, static mode, {len(kills_done)} SIGKILLs + restarts ({os.cpu_count()} CPUs)")
    print(f"  jobs in the store      {len(jobs)} for {len(set(deliveries))} deliveries")
    print(f"  lost                   {len(lost)}")
    print(f"  duplicated             {duplicated} (and {len(mismatched)} replies naming another job)")
    print(f"  graded more than once  {len(graded_twice)}")
    print(f"  re-run after a kill    {requeued} job(s) (interrupted while running, graded once after the restart)")
    print(f"  POSTs retried          {retries[0]} (server down); replies {dict(sorted(statuses.items()))}")
    print(f"  callbacks              {len(callbacks.by_job)} jobs, {callbacks_missing} missing, "
          f"{callback_repeats} repeated (at-least-once)")
    if latencies:
        print(f"  throughput             {len(latencies) / (last - started):.1f} graded/s "
              f"(first POST to last grade: {last - started:.1f} s)")
        print(f"  POST to graded         p50 {percentile(latencies, 50):.2f} s, p95 {percentile(latencies, 95):.2f} s, "
              f"p99 {percentile(latencies, 99):.2f} s (mean {statistics.mean(latencies):.2f} s)")
    ok = not lost and duplicated == 0 and not mismatched and not graded_twice and callbacks_missing == 0
    print("  result                 " + ("OK: every submission graded exactly once" if ok else "FAILED"))
    if ok and not args.keep:
        shutil.rmtree(workdir)
    else:
        print(f"  store and logs         {workdir}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
