"""The durable queue: jobs, their files, leases, outgoing deliveries and LTI launch state.

`Store` is the interface the rest of the service uses; `SQLiteStore` is the embedded
default (one server per database file, WAL mode, synchronous=FULL: a job the 202
announced survives SIGKILL and power loss); `PostgresStore` (store_postgres.py) serves
several servers sharing one queue. Both are `SQLStore`: the queue's rules are written
once, here, and every state change is a single transaction guarded by the row's current
state (and, for completion, by the lease), which makes completion exactly-once on both
(`SELECT ... FOR UPDATE [SKIP LOCKED]` on PostgreSQL, `BEGIN IMMEDIATE` on SQLite).
`open_store(spec)` opens the one a `--store` names: a postgresql:// URL or a file.

A job is claimed with a lease (owner, expiry, attempt number). Only the holder of the
current attempt can complete it: a worker that lost its lease (the server was killed,
the lease expired) finds its completion refused, so a job is graded once however many
times it was started. Completing a job also writes its outgoing deliveries (callback,
grade passback) in the same transaction: none is lost, none is sent for a job that
was not completed. A re-grade (`rescore`) records a graded job's new score and makes its
deliveries due again in one transaction; a sending that ends after that leaves them due
(`finish_delivery` only settles a delivery still `sending`). Which job a claim takes is
`lanes.py`'s order, the same SQL on both backends.
"""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Optional, Protocol, Union

from grader.errors import GraderError
from grader.service import lanes, migrations
from grader.service.migrations import Migration

STATUSES = ("queued", "running", "graded", "failed")


@dataclass(frozen=True)
class NewJob:
    student: str
    assignment: str
    source: str  # api | page | lti
    notebook: bytes = field(repr=False)
    model: Optional[bytes] = field(default=None, repr=False)
    callback_url: Optional[str] = None
    lti: Optional[dict] = None  # {"issuer", "client_id", "lineitem", "user_id"}
    delivery: Optional[str] = None  # X-Grader-Delivery
    signature: Optional[str] = None  # of the request that brought it: a byte-identical replay is the same job
    body_sha256: Optional[str] = None
    depth: Optional[str] = None  # a self-check (static | dry-run): checked, never graded; None: a submission
    link: Optional[str] = None  # a self-check of a GitHub link (fetched by the worker): no notebook bytes
    regrade: bool = False  # re-scoring a stored submission after a rubric fix: the lowest lane
    needs_gpu: bool = False  # the rubric requires a GPU: only a node with one claims it

    @property
    def lane(self) -> str:
        return lanes.lane_of(self.depth, self.regrade)


@dataclass(frozen=True)
class Delivery:
    id: int
    job_id: str
    kind: str  # callback | lti
    state: str  # pending | sending | sent | failed
    attempts: int
    last_error: Optional[str]
    updated: Optional[float]


@dataclass(frozen=True)
class Job:
    id: str
    seq: int
    student: str
    assignment: str
    source: str
    status: str
    attempts: int
    submitted: float
    started: Optional[float] = None
    finished: Optional[float] = None
    score: Optional[float] = None
    max_score: Optional[float] = None
    passed: Optional[bool] = None
    sheet: Optional[dict] = None
    reason: Optional[str] = None
    report_dir: Optional[str] = None
    callback_url: Optional[str] = None
    lti: Optional[dict] = None
    delivery: Optional[str] = None
    body_sha256: Optional[str] = None
    lease_owner: Optional[str] = None
    depth: Optional[str] = None
    link: Optional[str] = None
    lane: str = lanes.SUBMISSION
    needs_gpu: bool = False

    @property
    def selfcheck(self) -> bool:
        return self.depth is not None


@dataclass(frozen=True)
class JobResult:
    """What grading a job produced: its score and sheet, where its report is (the grading API's `Result`, as the
    store keeps it)."""

    score: float
    max_score: float
    passed: bool
    sheet: dict
    report_dir: str  # relative to the reports folder


class Unusable(Exception):
    """What the job brought cannot be graded or checked (a link that cannot be fetched): the job fails with this
    message, which is for its sender, not for the operator."""


class RateLimited(Exception):
    def __init__(self, count: int, retry_after: float):
        self.count, self.retry_after = count, retry_after


class DeliveryConflict(Exception):
    """The delivery id was used before, for a different body."""

    def __init__(self, job: Job):
        self.job = job


class Store(Protocol):
    where: str  # the file, or the URL without its password: for messages
    def submit(self, new: NewJob, *, rate: Optional[tuple[int, float]] = None,
               now: Optional[float] = None) -> tuple[Job, bool]: ...
    def get(self, job_id: str) -> Optional[Job]: ...
    def files(self, job_id: str) -> tuple[bytes, Optional[bytes]]: ...
    def claim(self, owner: str, lease: float, max_attempts: int, *, gpu: bool = False) -> Optional[Job]: ...
    def renew(self, owner: str, lease: float) -> int: ...
    def complete(self, job: Job, owner: str, result: JobResult) -> bool: ...
    def fail(self, job: Job, owner: str, reason: str) -> bool: ...
    def graded(self, assignment: str) -> list[Job]: ...
    def rescore(self, job: Job, result: JobResult, *, deliver: bool) -> bool: ...
    def release(self, owner: str) -> int: ...
    def recover(self) -> int: ...
    def counts(self, *, selfchecks: bool = False) -> dict[str, int]: ...
    def lane_counts(self) -> dict[str, dict[str, int]]: ...
    def position(self, job: Job) -> int: ...
    def events(self, job_id: str) -> list[tuple[float, str, int, Optional[str]]]: ...
    def deliveries(self, job_id: str) -> list[Delivery]: ...
    def claim_delivery(self, owner: str, lease: float) -> Optional[Delivery]: ...
    def finish_delivery(self, delivery: Delivery, *, ok: bool, attempts: int, error: Optional[str]) -> None: ...
    def put_state(self, state: str, data: dict, ttl: float) -> None: ...
    def get_state(self, state: str) -> Optional[dict]: ...
    def use_nonce(self, nonce: str, ttl: float) -> bool: ...
    def put_record(self, kind: str, key: str, data: dict) -> None: ...
    def get_record(self, kind: str, key: str) -> Optional[dict]: ...
    def latest_submissions(self, assignment: str) -> dict[str, Job]: ...
    def shared_value(self, name: str, make: Callable[[], bytes]) -> bytes: ...
    def close(self) -> None: ...


_JOBS_V1 = """CREATE TABLE jobs (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,  -- queue order
    id           TEXT NOT NULL UNIQUE,
    delivery     TEXT UNIQUE,                        -- X-Grader-Delivery
    signature    TEXT UNIQUE,
    body_sha256  TEXT,
    student      TEXT NOT NULL,
    assignment   TEXT NOT NULL,
    source       TEXT NOT NULL,
    status       TEXT NOT NULL CHECK (status IN ('queued', 'running', 'graded', 'failed')),
    attempts     INTEGER NOT NULL DEFAULT 0,
    lease_owner  TEXT,
    lease_until  REAL,
    submitted    REAL NOT NULL,
    started      REAL,
    finished     REAL,
    score        REAL,
    max_score    REAL,
    passed       INTEGER,
    sheet        TEXT,
    reason       TEXT,
    report_dir   TEXT,
    callback_url TEXT,
    lti          TEXT
)"""

# What the LMS told us, kept until it says otherwise: rosters and line items (`put_record`), in either backend.
LTI_RECORDS = ("CREATE TABLE lti_records (kind TEXT NOT NULL CHECK (kind IN ('roster', 'lineitem')), "
               "key TEXT NOT NULL, data TEXT NOT NULL, updated {real} NOT NULL, PRIMARY KEY (kind, key))")

SQLITE_MIGRATIONS = (
    Migration(1, "jobs, files, events, deliveries, LTI states and nonces", (
        _JOBS_V1,
        "CREATE INDEX jobs_by_status ON jobs (status, seq)",
        "CREATE INDEX jobs_by_student ON jobs (student, submitted)",
        "CREATE TABLE files (job_id TEXT PRIMARY KEY REFERENCES jobs (id), notebook BLOB NOT NULL, model BLOB)",
        # append-only history: what happened to each job, for operators and for the exactly-once checks
        "CREATE TABLE events (job_id TEXT NOT NULL, at REAL NOT NULL, kind TEXT NOT NULL, attempt INTEGER NOT NULL, "
        "detail TEXT)",
        "CREATE INDEX events_by_job ON events (job_id)",
        "CREATE TABLE deliveries (id INTEGER PRIMARY KEY AUTOINCREMENT, job_id TEXT NOT NULL, "
        "kind TEXT NOT NULL CHECK (kind IN ('callback', 'lti')), "
        "state TEXT NOT NULL CHECK (state IN ('pending', 'sending', 'sent', 'failed')), "
        "attempts INTEGER NOT NULL DEFAULT 0, lease_owner TEXT, lease_until REAL, last_error TEXT, updated REAL, "
        "UNIQUE (job_id, kind))",
        "CREATE INDEX deliveries_by_state ON deliveries (state, id)",
        "CREATE TABLE lti_states (state TEXT PRIMARY KEY, data TEXT NOT NULL, expires REAL NOT NULL)",
        "CREATE TABLE lti_nonces (nonce TEXT PRIMARY KEY, expires REAL NOT NULL)",
    )),
    Migration(2, "self-checks: jobs.depth and jobs.link", (
        "ALTER TABLE jobs ADD COLUMN depth TEXT",  # a self-check's depth; NULL for a submission
        "ALTER TABLE jobs ADD COLUMN link TEXT",  # a self-check's GitHub link
    )),
    Migration(3, "values shared by every server of the store (the LTI key)", (
        "CREATE TABLE shared (name TEXT PRIMARY KEY, value BLOB NOT NULL)",
    )),
    Migration(4, "lanes: jobs.lane and jobs.needs_gpu, and the indexes of the claim's order (lanes.py)", (
        *(f"ALTER TABLE jobs ADD COLUMN {column}" for column in lanes.COLUMNS), lanes.BACKFILL, *lanes.INDEXES,
    )),
    Migration(5, "LTI records: course rosters (NRPS) and line items found or made (AGS)", (
        LTI_RECORDS.format(real="REAL"),
    )),
)

_JOB_COLUMNS = ("id, seq, student, assignment, source, status, attempts, submitted, started, finished, score, "
                "max_score, passed, sheet, reason, report_dir, callback_url, lti, delivery, body_sha256, lease_owner, "
                "depth, link, lane, needs_gpu")


def _job(row: tuple) -> Job:
    (id_, seq, student, assignment, source, status, attempts, submitted, started, finished, score, max_score,
     passed, sheet, reason, report_dir, callback_url, lti, delivery, body_sha256, lease_owner, depth, link, lane,
     needs_gpu) = row
    return Job(id=id_, seq=seq, student=student, assignment=assignment, source=source, status=status,
               attempts=attempts, submitted=submitted, started=started, finished=finished, score=score,
               max_score=max_score, passed=None if passed is None else bool(passed),
               sheet=json.loads(sheet) if sheet else None, reason=reason, report_dir=report_dir,
               callback_url=callback_url, lti=json.loads(lti) if lti else None, delivery=delivery,
               body_sha256=body_sha256, lease_owner=lease_owner, depth=depth, link=link, lane=lane,
               needs_gpu=bool(needs_gpu))


def _delivery_kinds(job: Job, status: str) -> list[str]:
    """What a settled job sends: its callback (graded or failed), its grade passback (graded only)."""
    return (["callback"] if job.callback_url else []) + (["lti"] if job.lti and status == "graded" else [])


class SQLStore:
    """The queue's rules, in SQL both backends run (`?` placeholders). A backend gives `_tx` (one write transaction),
    `_read` (a connection for reads), its migrations, and how it locks the rows it claims."""

    MIGRATIONS: tuple[Migration, ...] = ()
    FOR_UPDATE = ""  # appended to a SELECT whose rows the transaction then changes
    SKIP_LOCKED = ""  # ... and to a claim's SELECT: rows another server is claiming are skipped, not waited for
    EVENT_ORDER = "rowid"
    where = ""  # for messages: the file or URL (without password)

    def _tx(self):
        raise NotImplementedError

    def _read(self):
        raise NotImplementedError

    def _recover_where(self) -> tuple[str, tuple, str]:
        raise NotImplementedError

    def _before_submit(self, db, new: NewJob) -> None:
        """Hook: serialise submits that could race past the rate limit (SQLite's BEGIN IMMEDIATE already does)."""

    def _migrate(self, db) -> list[int]:
        db.execute(migrations.VERSION_TABLE)
        return migrations.apply(db, migrations.current_version(db), self.MIGRATIONS, self.where)

    # jobs

    def _one(self, db, where: str, *args) -> Optional[Job]:
        row = db.execute(f"SELECT {_JOB_COLUMNS} FROM jobs WHERE {where}", args).fetchone()
        return _job(row) if row else None

    @staticmethod
    def _event(db, job_id: str, kind: str, attempt: int, detail: Optional[str] = None,
               now: Optional[float] = None) -> None:
        db.execute("INSERT INTO events (job_id, at, kind, attempt, detail) VALUES (?, ?, ?, ?, ?)",
                   (job_id, time.time() if now is None else now, kind, attempt, detail))

    def submit(self, new: NewJob, *, rate: Optional[tuple[int, float]] = None,
               now: Optional[float] = None) -> tuple[Job, bool]:
        """Queue a job, or return the one this delivery (or this very request) created before.

        The rate limit is checked in the same transaction, so concurrent requests cannot slip past it.
        """
        now = time.time() if now is None else now
        with self._tx() as db:
            self._before_submit(db, new)
            if new.delivery is not None:
                seen = self._one(db, "delivery = ?", new.delivery)
                if seen is not None:
                    if new.body_sha256 is not None and seen.body_sha256 != new.body_sha256:
                        raise DeliveryConflict(seen)
                    return seen, False
            if new.signature is not None:
                seen = self._one(db, "signature = ?", new.signature)
                if seen is not None:
                    return seen, False
            if rate is not None:
                count, seconds = rate
                # one bucket per source: the upload page, the LMS webhook and LTI launches do not use up each other's
                recent = db.execute("SELECT COUNT(*), MIN(submitted) FROM jobs WHERE student = ? AND source = ? "
                                    "AND submitted > ?", (new.student, new.source, now - seconds)).fetchone()
                if recent[0] >= count:
                    raise RateLimited(count, max(1.0, recent[1] + seconds - now))
            job_id = uuid.uuid4().hex
            db.execute("INSERT INTO jobs (id, delivery, signature, body_sha256, student, assignment, source, status, "
                       "submitted, callback_url, lti, depth, link, lane, needs_gpu) "
                       "VALUES (?, ?, ?, ?, ?, ?, ?, 'queued', ?, ?, ?, ?, ?, ?, ?)",
                       (job_id, new.delivery, new.signature, new.body_sha256, new.student, new.assignment,
                        new.source, now, new.callback_url, json.dumps(new.lti) if new.lti else None, new.depth,
                        new.link, new.lane, int(new.needs_gpu)))
            db.execute("INSERT INTO files (job_id, notebook, model) VALUES (?, ?, ?)",
                       (job_id, new.notebook, new.model))
            self._event(db, job_id, "submitted", 0, new.source, now)
            job = self._one(db, "id = ?", job_id)
            assert job is not None, f"job {job_id} was inserted in this transaction"
            return job, True

    def get(self, job_id: str) -> Optional[Job]:
        with self._read() as db:
            return self._one(db, "id = ?", job_id)

    def files(self, job_id: str) -> tuple[bytes, Optional[bytes]]:
        with self._read() as db:
            notebook, model = db.execute("SELECT notebook, model FROM files WHERE job_id = ?", (job_id,)).fetchone()
        return bytes(notebook), None if model is None else bytes(model)

    def claim(self, owner: str, lease: float, max_attempts: int, *, gpu: bool = False) -> Optional[Job]:
        """The next job waiting (or whose lease ran out) in lane order (grader.service.lanes), now running under
        `owner` as a new attempt; `gpu`: this node has one, so it may take jobs that need one."""
        with self._tx() as db:
            now = time.time()  # once in the transaction: a job submitted while we waited for the lock started after
            while True:
                where, order, args = lanes.claim_clauses(now, gpu=gpu)
                job = self._one(db, f"{where} ORDER BY {order} LIMIT 1{self.SKIP_LOCKED}", *args)
                if job is None:
                    return None
                if job.attempts >= max_attempts:
                    reason = (f"grading was interrupted {job.attempts} times (the server stopped or lost the job "
                              f"each time); this submission may crash the grader: grade it by hand with "
                              f"`grade check` and report it")
                    self._finish(db, job, "failed", job.attempts, reason=reason, now=now)
                    continue
                attempt = job.attempts + 1
                db.execute("UPDATE jobs SET status = 'running', attempts = ?, lease_owner = ?, lease_until = ?, "
                           "started = ? WHERE id = ?", (attempt, owner, now + lease, now, job.id))
                self._event(db, job.id, "claimed", attempt, owner, now)
                return self._one(db, "id = ?", job.id)

    def renew(self, owner: str, lease: float) -> int:
        with self._tx() as db:
            return db.execute("UPDATE jobs SET lease_until = ? WHERE status = 'running' AND lease_owner = ?",
                              (time.time() + lease, owner)).rowcount

    def _finish(self, db, job: Job, status: str, attempt: int, *, reason: Optional[str] = None,
                result: Optional[JobResult] = None, now: Optional[float] = None) -> None:
        now = time.time() if now is None else now
        values = (result.score, result.max_score, int(result.passed), json.dumps(result.sheet),
                  result.report_dir) if result else (None, None, None, None, None)
        db.execute("UPDATE jobs SET status = ?, finished = ?, reason = ?, score = ?, max_score = ?, passed = ?, "
                   "sheet = ?, report_dir = ?, lease_owner = NULL, lease_until = NULL WHERE id = ?",
                   (status, now, reason, *values, job.id))
        self._event(db, job.id, status, attempt, reason, now)
        if job.selfcheck:  # checked, not graded: the notebook is not kept, and nothing is sent anywhere
            db.execute("DELETE FROM files WHERE job_id = ?", (job.id,))
            return
        for kind in _delivery_kinds(job, status):
            db.execute("INSERT INTO deliveries (job_id, kind, state, updated) VALUES (?, ?, 'pending', ?) "
                       "ON CONFLICT DO NOTHING", (job.id, kind, now))

    def _settle(self, job: Job, owner: str, status: str, **kw) -> bool:
        with self._tx() as db:
            current = self._one(db, f"id = ? AND status = 'running' AND lease_owner = ? AND attempts = ?"
                                    f"{self.FOR_UPDATE}", job.id, owner, job.attempts)
            if current is None:
                return False  # the lease was lost: another attempt owns the job, or it is settled already
            self._finish(db, current, status, job.attempts, **kw)
            return True

    def complete(self, job: Job, owner: str, result: JobResult) -> bool:
        return self._settle(job, owner, "graded", result=result)

    def fail(self, job: Job, owner: str, reason: str) -> bool:
        return self._settle(job, owner, "failed", reason=reason)

    def graded(self, assignment: str) -> list[Job]:
        """The assignment's graded submissions (no self-check), oldest first."""
        with self._read() as db:
            rows = db.execute(f"SELECT {_JOB_COLUMNS} FROM jobs WHERE assignment = ? AND status = 'graded' "
                              "AND depth IS NULL ORDER BY seq", (assignment,)).fetchall()
        return [_job(row) for row in rows]

    def rescore(self, job: Job, result: JobResult, *, deliver: bool) -> bool:
        """A graded job's new score (a re-grade from its stored facts), with an event `rescored`; with `deliver`,
        its callback and grade passback are due again in the same transaction (pending, attempts from 0), so a
        changed score is never lost. False when the job is not graded (nothing changed)."""
        now = time.time()
        with self._tx() as db:
            current = self._one(db, f"id = ? AND status = 'graded'{self.FOR_UPDATE}", job.id)
            if current is None:
                return False
            db.execute("UPDATE jobs SET score = ?, max_score = ?, passed = ?, sheet = ? WHERE id = ?",
                       (result.score, result.max_score, int(result.passed), json.dumps(result.sheet), job.id))
            self._event(db, job.id, "rescored", current.attempts,
                        f"{current.score:g} -> {result.score:g} / {result.max_score:g}", now)
            for kind in _delivery_kinds(current, "graded") if deliver else []:
                db.execute("INSERT INTO deliveries (job_id, kind, state, updated) VALUES (?, ?, 'pending', ?) "
                           "ON CONFLICT (job_id, kind) DO UPDATE SET state = 'pending', attempts = 0, "
                           "last_error = NULL, lease_owner = NULL, lease_until = NULL, updated = excluded.updated",
                           (job.id, kind, now))
            return True

    def _requeue(self, where: str, args: tuple, detail: str) -> int:
        with self._tx() as db:
            rows = db.execute(f"SELECT id, attempts FROM jobs WHERE status = 'running' AND {where}{self.SKIP_LOCKED}",
                              args).fetchall()
            for job_id, attempt in rows:
                db.execute("UPDATE jobs SET status = 'queued', lease_owner = NULL, lease_until = NULL "
                           "WHERE id = ?", (job_id,))
                self._event(db, job_id, "requeued", attempt, detail)
            db.execute(f"UPDATE deliveries SET state = 'pending', lease_owner = NULL WHERE state = 'sending' "
                       f"AND {where}", args)
            return len(rows)

    def release(self, owner: str) -> int:
        """At shutdown: this server's unfinished jobs go back to the queue, to be re-run from the start."""
        return self._requeue("lease_owner = ?", (owner,), "the server stopped while grading")

    def recover(self) -> int:
        """At start: the jobs (and sends) a stopped or killed server left running go back to the queue."""
        return self._requeue(*self._recover_where())

    def counts(self, *, selfchecks: bool = False) -> dict[str, int]:
        """Submissions by status; with `selfchecks`, self-checks instead (they are no submissions)."""
        with self._read() as db:
            found = dict(db.execute(f"SELECT status, COUNT(*) FROM jobs WHERE depth IS "
                                    f"{'NOT NULL' if selfchecks else 'NULL'} GROUP BY status").fetchall())
        return {status: found.get(status, 0) for status in STATUSES}

    def lane_counts(self) -> dict[str, dict[str, int]]:
        """Jobs by lane, then by status."""
        with self._read() as db:
            found = {(lane, status): count for lane, status, count in db.execute(
                "SELECT lane, status, COUNT(*) FROM jobs GROUP BY lane, status").fetchall()}
        return {lane: {status: found.get((lane, status), 0) for status in STATUSES} for lane in lanes.LANES}

    def position(self, job: Job) -> int:
        """1 for the next job to be claimed: the waiting self-checks ahead of it, and for a submission or a regrade
        also its assignment's jobs ahead of it (lanes.py). Other assignments' jobs take turns with these, so for
        those it is the place in its own assignment's line, not a promise of the order."""
        queued = "SELECT COUNT(*) FROM jobs WHERE status = 'queued' AND "
        selfchecks = f"lane = '{lanes.SELFCHECK}'"
        with self._read() as db:
            if job.lane == lanes.SELFCHECK:
                return 1 + db.execute(queued + selfchecks + " AND seq < ?", (job.seq,)).fetchone()[0]
            before = "lane = ? AND seq < ?" if job.lane == lanes.SUBMISSION else \
                f"(lane = '{lanes.SUBMISSION}' OR (lane = ? AND seq < ?))"  # a regrade waits for its submissions
            return 1 + db.execute(queued + f"({selfchecks} OR (assignment = ? AND {before}))",
                                  (job.assignment, job.lane, job.seq)).fetchone()[0]

    def events(self, job_id: str) -> list[tuple[float, str, int, Optional[str]]]:
        with self._read() as db:
            return [tuple(row) for row in db.execute(f"SELECT at, kind, attempt, detail FROM events WHERE job_id = ? "
                                                     f"ORDER BY {self.EVENT_ORDER}", (job_id,)).fetchall()]

    # deliveries (callbacks, grade passback)

    def deliveries(self, job_id: str) -> list[Delivery]:
        with self._read() as db:
            rows = db.execute("SELECT id, job_id, kind, state, attempts, last_error, updated FROM deliveries "
                              "WHERE job_id = ? ORDER BY id", (job_id,)).fetchall()
        return [Delivery(*row) for row in rows]

    def claim_delivery(self, owner: str, lease: float) -> Optional[Delivery]:
        now = time.time()
        with self._tx() as db:
            row = db.execute(f"SELECT id, job_id, kind, state, attempts, last_error, updated FROM deliveries "
                             f"WHERE state = 'pending' OR (state = 'sending' AND lease_until < ?) ORDER BY id LIMIT 1"
                             f"{self.SKIP_LOCKED}", (now,)).fetchone()
            if row is None:
                return None
            db.execute("UPDATE deliveries SET state = 'sending', lease_owner = ?, lease_until = ?, updated = ? "
                       "WHERE id = ?", (owner, now + lease, now, row[0]))
            return replace(Delivery(*row), state="sending")

    def finish_delivery(self, delivery: Delivery, *, ok: bool, attempts: int, error: Optional[str]) -> None:
        """Record a sending's end; not over a delivery that was made due again meanwhile (a re-grade's new score
        must still go out)."""
        with self._tx() as db:
            db.execute("UPDATE deliveries SET state = ?, attempts = attempts + ?, last_error = ?, lease_owner = NULL, "
                       "lease_until = NULL, updated = ? WHERE id = ? AND state = 'sending'",
                       ("sent" if ok else "failed", attempts, error, time.time(), delivery.id))

    # LTI: OIDC state between login initiation and launch, and nonces already used

    def put_state(self, state: str, data: dict, ttl: float) -> None:
        now = time.time()
        with self._tx() as db:
            db.execute("DELETE FROM lti_states WHERE expires < ?", (now,))
            db.execute("DELETE FROM lti_nonces WHERE expires < ?", (now,))
            db.execute("INSERT INTO lti_states (state, data, expires) VALUES (?, ?, ?)",
                       (state, json.dumps(data), now + ttl))

    def get_state(self, state: str) -> Optional[dict]:
        with self._read() as db:
            row = db.execute("SELECT data FROM lti_states WHERE state = ? AND expires >= ?",
                             (state, time.time())).fetchone()
        return json.loads(row[0]) if row else None

    def use_nonce(self, nonce: str, ttl: float) -> bool:
        """False when the nonce was used before: the id_token is a replay."""
        with self._tx() as db:
            return db.execute("INSERT INTO lti_nonces (nonce, expires) VALUES (?, ?) ON CONFLICT DO NOTHING",
                              (nonce, time.time() + ttl)).rowcount == 1

    # LTI: rosters and line items, one record per (kind, key), replaced when read again

    def put_record(self, kind: str, key: str, data: dict) -> None:
        with self._tx() as db:
            db.execute("INSERT INTO lti_records (kind, key, data, updated) VALUES (?, ?, ?, ?) "
                       "ON CONFLICT (kind, key) DO UPDATE SET data = excluded.data, updated = excluded.updated",
                       (kind, key, json.dumps(data), time.time()))

    def get_record(self, kind: str, key: str) -> Optional[dict]:
        with self._read() as db:
            row = db.execute("SELECT data FROM lti_records WHERE kind = ? AND key = ?", (kind, key)).fetchone()
        return json.loads(row[0]) if row else None

    def latest_submissions(self, assignment: str) -> dict[str, Job]:
        """Each student's latest submission (not self-check) to `assignment`: the instructor's grade book."""
        with self._read() as db:
            rows = db.execute(f"SELECT {_JOB_COLUMNS} FROM jobs WHERE assignment = ? AND depth IS NULL "
                              "ORDER BY seq", (assignment,)).fetchall()
        return {job.student: job for job in map(_job, rows)}

    def shared_value(self, name: str, make: Callable[[], bytes]) -> bytes:
        """The value kept under `name` for every server of this store; the first caller's `make()` sets it."""
        with self._tx() as db:
            row = db.execute(f"SELECT value FROM shared WHERE name = ?{self.FOR_UPDATE}", (name,)).fetchone()
            if row is None:
                db.execute("INSERT INTO shared (name, value) VALUES (?, ?) ON CONFLICT DO NOTHING", (name, make()))
                row = db.execute("SELECT value FROM shared WHERE name = ?", (name,)).fetchone()
        return bytes(row[0])


class SQLiteStore(SQLStore):
    """The embedded store. One server per file: a lock file beside it says which process holds it."""

    MIGRATIONS = SQLITE_MIGRATIONS

    def __init__(self, path: Path):
        self.path = Path(path)
        self.where = str(self.path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = self._lock_file()
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._guard = threading.Lock()
        with self._tx() as db:
            self._migrate(db)

    def _migrate(self, db) -> list[int]:
        db.execute(migrations.VERSION_TABLE)
        if migrations.current_version(db) == 0:
            self._adopt(db)
        return super()._migrate(db)

    def _adopt(self, db) -> None:
        """A store made before schema_version existed: record the migrations its tables already have."""
        columns = {row[1] for row in db.execute("PRAGMA table_info(jobs)")}
        if not columns:
            return
        for migration in self.MIGRATIONS[:2 if "depth" in columns else 1]:
            migrations.record(db, migration, f"{migration.what} (found: made before schema_version)")

    def _lock_file(self):
        lock_path = self.path.with_name(self.path.name + ".lock")
        handle = open(lock_path, "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise GraderError(f"the store is in use by {holder}", where=str(self.path),
                              fix="stop that server, or give this one another --store file") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"grade serve (pid {os.getpid()})\n")
        handle.flush()
        return handle

    def _db(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, isolation_level=None, timeout=30, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")  # the 202 promises the job is on disk
            db.execute("PRAGMA busy_timeout=30000")
            db.execute("PRAGMA foreign_keys=ON")
            self._local.db = db
            with self._guard:
                self._connections.append(db)
        return db

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        yield self._db()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; BEGIN IMMEDIATE takes the write lock up front, so reads inside it are current."""
        db = self._db()
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def _recover_where(self) -> tuple[str, tuple, str]:
        # the lock file proves no other server uses this file, so every running job was interrupted
        return "1 = 1", (), "the server was stopped (or killed) while grading; re-run from the start"

    def close(self) -> None:
        with self._guard:
            for db in self._connections:
                db.close()
            self._connections.clear()
        self._local = threading.local()
        self._lock.close()


def is_url(spec: Union[str, Path]) -> bool:
    return isinstance(spec, str) and spec.startswith(("postgresql://", "postgres://"))


def open_store(spec: Union[str, Path]) -> Store:
    """The store a `--store` names: a postgresql:// URL (several servers share it), else a SQLite file."""
    if is_url(spec):
        try:
            from grader.service.store_postgres import PostgresStore  # psycopg is needed only for this store
        except ModuleNotFoundError as exc:
            if (exc.name or "").split(".")[0] != "psycopg":
                raise
            raise GraderError("a PostgreSQL store needs psycopg 3, which is not installed", where="--store",
                              fix="pip install -e '.[postgres]' (or pip install 'psycopg[binary]'), or give --store "
                                  "a SQLite file") from None
        return PostgresStore(str(spec))
    return SQLiteStore(Path(spec))
