"""The durable queue: jobs, their files, leases, outgoing deliveries and LTI launch state.

`Store` is the interface the rest of the service uses; `SQLiteStore` is the embedded
default (one server per database file, WAL mode, synchronous=FULL: a job the 202
announced survives SIGKILL and power loss). A PostgreSQL adapter implements the same
methods for several servers sharing one queue: every state change below is a single
transaction guarded by the row's current state (and, for completion, by the lease),
which is what makes completion exactly-once there too (`SELECT ... FOR UPDATE SKIP
LOCKED` in place of SQLite's `BEGIN IMMEDIATE`).

A job is claimed with a lease (owner, expiry, attempt number). Only the holder of the
current attempt can complete it: a worker that lost its lease (the server was killed,
the lease expired) finds its completion refused, so a job is graded once however many
times it was started. Completing a job also writes its outgoing deliveries (callback,
grade passback) in the same transaction: none is lost, none is sent for a job that
was not completed. A re-grade (`rescore`) records a graded job's new score and makes its
deliveries due again in one transaction; a sending that ends after that leaves them due
(`finish_delivery` only settles a delivery still `sending`).
"""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
import threading
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Optional, Protocol

from grader.errors import GraderError
from grader.service import lanes

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
class Outcome:
    """What grading a job produced."""

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
    def submit(self, new: NewJob, *, rate: Optional[tuple[int, float]] = None,
               now: Optional[float] = None) -> tuple[Job, bool]: ...
    def get(self, job_id: str) -> Optional[Job]: ...
    def files(self, job_id: str) -> tuple[bytes, Optional[bytes]]: ...
    def claim(self, owner: str, lease: float, max_attempts: int, *, gpu: bool = False) -> Optional[Job]: ...
    def renew(self, owner: str, lease: float) -> int: ...
    def complete(self, job: Job, owner: str, outcome: Outcome) -> bool: ...
    def fail(self, job: Job, owner: str, reason: str) -> bool: ...
    def graded(self, assignment: str) -> list[Job]: ...
    def rescore(self, job: Job, outcome: Outcome, *, deliver: bool) -> bool: ...
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
    def close(self) -> None: ...


SCHEMA = f"""
CREATE TABLE IF NOT EXISTS jobs (
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
    lti          TEXT,
    {lanes.COLUMNS[0]},
    {lanes.COLUMNS[1]},
    depth        TEXT,                               -- a self-check's depth; NULL for a submission
    link         TEXT                                -- a self-check's GitHub link
);
CREATE INDEX IF NOT EXISTS jobs_by_status ON jobs (status, seq);
CREATE INDEX IF NOT EXISTS jobs_by_student ON jobs (student, submitted);
CREATE TABLE IF NOT EXISTS files (
    job_id   TEXT PRIMARY KEY REFERENCES jobs (id),
    notebook BLOB NOT NULL,
    model    BLOB
);
-- Append-only history: what happened to each job, for operators and for the exactly-once checks.
CREATE TABLE IF NOT EXISTS events (
    job_id  TEXT NOT NULL,
    at      REAL NOT NULL,
    kind    TEXT NOT NULL,   -- submitted, claimed, graded, failed, requeued
    attempt INTEGER NOT NULL,
    detail  TEXT
);
CREATE INDEX IF NOT EXISTS events_by_job ON events (job_id);
CREATE TABLE IF NOT EXISTS deliveries (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id      TEXT NOT NULL,
    kind        TEXT NOT NULL CHECK (kind IN ('callback', 'lti')),
    state       TEXT NOT NULL CHECK (state IN ('pending', 'sending', 'sent', 'failed')),
    attempts    INTEGER NOT NULL DEFAULT 0,
    lease_owner TEXT,
    lease_until REAL,
    last_error  TEXT,
    updated     REAL,
    UNIQUE (job_id, kind)
);
CREATE INDEX IF NOT EXISTS deliveries_by_state ON deliveries (state, id);
CREATE TABLE IF NOT EXISTS lti_states (state TEXT PRIMARY KEY, data TEXT NOT NULL, expires REAL NOT NULL);
CREATE TABLE IF NOT EXISTS lti_nonces (nonce TEXT PRIMARY KEY, expires REAL NOT NULL);
-- What the LMS told us, kept until it says otherwise: course rosters (NRPS) and line items found or made (AGS).
CREATE TABLE IF NOT EXISTS lti_records (
    kind    TEXT NOT NULL CHECK (kind IN ('roster', 'lineitem')),
    key     TEXT NOT NULL,
    data    TEXT NOT NULL,
    updated REAL NOT NULL,
    PRIMARY KEY (kind, key)
);
{";".join(lanes.INDEXES)};
"""

_JOB_COLUMNS = ("id, seq, student, assignment, source, status, attempts, submitted, started, finished, score, "
                "max_score, passed, sheet, reason, report_dir, callback_url, lti, delivery, body_sha256, lease_owner, "
                "depth, link, lane, needs_gpu")
# Added to jobs after the first release: a store made before gets them at open (with what fills them there).
ADDED_COLUMNS = (("depth", "depth TEXT", None), ("link", "link TEXT", None),
                 ("lane", lanes.COLUMNS[0], lanes.BACKFILL), ("needs_gpu", lanes.COLUMNS[1], None))


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


class SQLiteStore:
    """The embedded store. One server per file: a lock file beside it says which process holds it."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = self._lock_file()
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._guard = threading.Lock()
        db = self._db()
        have = {row[1] for row in db.execute("PRAGMA table_info(jobs)")}
        if have:
            for column, definition, backfill in ADDED_COLUMNS:
                if column not in have:
                    db.execute(f"ALTER TABLE jobs ADD COLUMN {definition}")
                    if backfill:
                        db.execute(backfill)
        db.executescript(SCHEMA)

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

    def close(self) -> None:
        with self._guard:
            for db in self._connections:
                db.close()
            self._connections.clear()
        self._local = threading.local()
        self._lock.close()

    # jobs

    def _one(self, db: sqlite3.Connection, where: str, *args) -> Optional[Job]:
        row = db.execute(f"SELECT {_JOB_COLUMNS} FROM jobs WHERE {where}", args).fetchone()
        return _job(row) if row else None

    @staticmethod
    def _event(db: sqlite3.Connection, job_id: str, kind: str, attempt: int, detail: Optional[str] = None,
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
            return self._one(db, "id = ?", job_id), True

    def get(self, job_id: str) -> Optional[Job]:
        return self._one(self._db(), "id = ?", job_id)

    def files(self, job_id: str) -> tuple[bytes, Optional[bytes]]:
        notebook, model = self._db().execute("SELECT notebook, model FROM files WHERE job_id = ?",
                                             (job_id,)).fetchone()
        return bytes(notebook), None if model is None else bytes(model)

    def claim(self, owner: str, lease: float, max_attempts: int, *, gpu: bool = False) -> Optional[Job]:
        """The next job waiting (or whose lease ran out) in lane order (grader.service.lanes), now running under
        `owner` as a new attempt; `gpu`: this node has one, so it may take jobs that need one."""
        with self._tx() as db:
            now = time.time()  # once the write lock is ours: a job submitted while we waited for it started after
            while True:
                where, order, args = lanes.claim_clauses(now, gpu=gpu)
                job = self._one(db, f"{where} ORDER BY {order} LIMIT 1", *args)
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

    def _finish(self, db: sqlite3.Connection, job: Job, status: str, attempt: int, *, reason: Optional[str] = None,
                outcome: Optional[Outcome] = None, now: Optional[float] = None) -> None:
        now = time.time() if now is None else now
        values = (outcome.score, outcome.max_score, int(outcome.passed), json.dumps(outcome.sheet),
                  outcome.report_dir) if outcome else (None, None, None, None, None)
        db.execute("UPDATE jobs SET status = ?, finished = ?, reason = ?, score = ?, max_score = ?, passed = ?, "
                   "sheet = ?, report_dir = ?, lease_owner = NULL, lease_until = NULL WHERE id = ?",
                   (status, now, reason, *values, job.id))
        self._event(db, job.id, status, attempt, reason, now)
        if job.selfcheck:  # checked, not graded: the notebook is not kept, and nothing is sent anywhere
            db.execute("DELETE FROM files WHERE job_id = ?", (job.id,))
            return
        for kind in _delivery_kinds(job, status):
            db.execute("INSERT OR IGNORE INTO deliveries (job_id, kind, state, updated) VALUES (?, ?, 'pending', ?)",
                       (job.id, kind, now))

    def _settle(self, job: Job, owner: str, status: str, **kw) -> bool:
        with self._tx() as db:
            current = self._one(db, "id = ? AND status = 'running' AND lease_owner = ? AND attempts = ?",
                                job.id, owner, job.attempts)
            if current is None:
                return False  # the lease was lost: another attempt owns the job, or it is settled already
            self._finish(db, current, status, job.attempts, **kw)
            return True

    def complete(self, job: Job, owner: str, outcome: Outcome) -> bool:
        return self._settle(job, owner, "graded", outcome=outcome)

    def fail(self, job: Job, owner: str, reason: str) -> bool:
        return self._settle(job, owner, "failed", reason=reason)

    def graded(self, assignment: str) -> list[Job]:
        """The assignment's graded submissions (no self-check), oldest first."""
        rows = self._db().execute(f"SELECT {_JOB_COLUMNS} FROM jobs WHERE assignment = ? AND status = 'graded' "
                                  "AND depth IS NULL ORDER BY seq", (assignment,)).fetchall()
        return [_job(row) for row in rows]

    def rescore(self, job: Job, outcome: Outcome, *, deliver: bool) -> bool:
        """A graded job's new score (a re-grade from its stored facts), with an event `rescored`; with `deliver`,
        its callback and grade passback are due again in the same transaction (pending, attempts from 0), so a
        changed score is never lost. False when the job is not graded (nothing changed)."""
        now = time.time()
        with self._tx() as db:
            current = self._one(db, "id = ? AND status = 'graded'", job.id)
            if current is None:
                return False
            db.execute("UPDATE jobs SET score = ?, max_score = ?, passed = ?, sheet = ? WHERE id = ?",
                       (outcome.score, outcome.max_score, int(outcome.passed), json.dumps(outcome.sheet), job.id))
            self._event(db, job.id, "rescored", current.attempts,
                        f"{current.score:g} -> {outcome.score:g} / {outcome.max_score:g}", now)
            for kind in _delivery_kinds(current, "graded") if deliver else []:
                db.execute("INSERT INTO deliveries (job_id, kind, state, updated) VALUES (?, ?, 'pending', ?) "
                           "ON CONFLICT (job_id, kind) DO UPDATE SET state = 'pending', attempts = 0, "
                           "last_error = NULL, lease_owner = NULL, lease_until = NULL, updated = excluded.updated",
                           (job.id, kind, now))
            return True

    def _requeue(self, where: str, args: tuple, detail: str) -> int:
        with self._tx() as db:
            rows = db.execute(f"SELECT id, attempts FROM jobs WHERE status = 'running' AND {where}", args).fetchall()
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
        """At start: the lock file proves no other server uses this file, so every running job was interrupted."""
        return self._requeue("1 = 1", (), "the server was stopped (or killed) while grading; re-run from the start")

    def counts(self, *, selfchecks: bool = False) -> dict[str, int]:
        """Submissions by status; with `selfchecks`, self-checks instead (they are no submissions)."""
        found = dict(self._db().execute(f"SELECT status, COUNT(*) FROM jobs WHERE depth IS "
                                        f"{'NOT NULL' if selfchecks else 'NULL'} GROUP BY status").fetchall())
        return {status: found.get(status, 0) for status in STATUSES}

    def lane_counts(self) -> dict[str, dict[str, int]]:
        """Jobs by lane, then by status."""
        found = {(lane, status): count for lane, status, count in self._db().execute(
            "SELECT lane, status, COUNT(*) FROM jobs GROUP BY lane, status")}
        return {lane: {status: found.get((lane, status), 0) for status in STATUSES} for lane in lanes.LANES}

    def position(self, job: Job) -> int:
        """1 for the next job to be claimed: the waiting self-checks ahead of it, and for a submission or a regrade
        also its assignment's jobs ahead of it (lanes.py). Other assignments' jobs take turns with these, so for
        those it is the place in its own assignment's line, not a promise of the order."""
        queued = "SELECT COUNT(*) FROM jobs WHERE status = 'queued' AND "
        selfchecks = f"lane = '{lanes.SELFCHECK}'"
        if job.lane == lanes.SELFCHECK:
            return 1 + self._db().execute(queued + selfchecks + " AND seq < ?", (job.seq,)).fetchone()[0]
        before = "lane = ? AND seq < ?" if job.lane == lanes.SUBMISSION else \
            f"(lane = '{lanes.SUBMISSION}' OR (lane = ? AND seq < ?))"  # a regrade waits for its submissions
        return 1 + self._db().execute(queued + f"({selfchecks} OR (assignment = ? AND {before}))",
                                      (job.assignment, job.lane, job.seq)).fetchone()[0]

    def events(self, job_id: str) -> list[tuple[float, str, int, Optional[str]]]:
        return self._db().execute("SELECT at, kind, attempt, detail FROM events WHERE job_id = ? ORDER BY rowid",
                                  (job_id,)).fetchall()

    # deliveries (callbacks, grade passback)

    def deliveries(self, job_id: str) -> list[Delivery]:
        rows = self._db().execute("SELECT id, job_id, kind, state, attempts, last_error, updated FROM deliveries "
                                  "WHERE job_id = ? ORDER BY id", (job_id,)).fetchall()
        return [Delivery(*row) for row in rows]

    def claim_delivery(self, owner: str, lease: float) -> Optional[Delivery]:
        now = time.time()
        with self._tx() as db:
            row = db.execute("SELECT id, job_id, kind, state, attempts, last_error, updated FROM deliveries "
                             "WHERE state = 'pending' OR (state = 'sending' AND lease_until < ?) ORDER BY id LIMIT 1",
                             (now,)).fetchone()
            if row is None:
                return None
            db.execute("UPDATE deliveries SET state = 'sending', lease_owner = ?, lease_until = ?, updated = ? "
                       "WHERE id = ?", (owner, now + lease, now, row[0]))
            return Delivery(*row[:3], "sending", *row[4:])

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
        row = self._db().execute("SELECT data FROM lti_states WHERE state = ? AND expires >= ?",
                                 (state, time.time())).fetchone()
        return json.loads(row[0]) if row else None

    def use_nonce(self, nonce: str, ttl: float) -> bool:
        """False when the nonce was used before: the id_token is a replay."""
        with self._tx() as db:
            try:
                db.execute("INSERT INTO lti_nonces (nonce, expires) VALUES (?, ?)", (nonce, time.time() + ttl))
            except sqlite3.IntegrityError:
                return False
            return True

    # LTI: rosters and line items, one record per (kind, key), replaced when read again

    def put_record(self, kind: str, key: str, data: dict) -> None:
        with self._tx() as db:
            db.execute("INSERT INTO lti_records (kind, key, data, updated) VALUES (?, ?, ?, ?) "
                       "ON CONFLICT (kind, key) DO UPDATE SET data = excluded.data, updated = excluded.updated",
                       (kind, key, json.dumps(data), time.time()))

    def get_record(self, kind: str, key: str) -> Optional[dict]:
        row = self._db().execute("SELECT data FROM lti_records WHERE kind = ? AND key = ?", (kind, key)).fetchone()
        return json.loads(row[0]) if row else None

    def latest_submissions(self, assignment: str) -> dict[str, Job]:
        """Each student's latest submission (not self-check) to `assignment`: the instructor's grade book."""
        rows = self._db().execute(f"SELECT {_JOB_COLUMNS} FROM jobs WHERE assignment = ? AND depth IS NULL "
                                  "ORDER BY seq", (assignment,)).fetchall()
        return {job.student: job for job in map(_job, rows)}
