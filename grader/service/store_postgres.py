"""The PostgreSQL store (psycopg 3): several `grade serve` nodes share one queue.

The queue's rules are SQLStore's (store.py); this adds what PostgreSQL does differently: a claim takes its row
with `FOR UPDATE SKIP LOCKED` (two nodes claiming at once take different jobs, neither waits), completion locks
the row it checks the lease on (`FOR UPDATE`, so a claim by another node cannot slip between the check and the
write), submits of one student serialise on an advisory lock (the rate limit holds across nodes), and the schema
is migrated under an advisory lock (two nodes starting at once do not both migrate).

There is no lock file: several servers are the point. So a start cannot know that a running job's server is gone;
it takes back only jobs whose lease ran out (a live server renews its leases every third of --lease).
"""

from __future__ import annotations

import queue
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg

from grader.errors import GraderError
from grader.service import lanes
from grader.service.migrations import Migration
from grader.service.store import LTI_RECORDS, NewJob, SQLStore

POOL_SIZE = 8  # connections per server: workers, the lease heartbeat, the outbox and requests share them
MIGRATION_LOCK = 0x67726164  # the advisory lock (any fixed number) held while the schema is migrated

POSTGRES_MIGRATIONS = (
    Migration(1, "jobs, files, events, deliveries, LTI states and nonces, shared values", (
        """CREATE TABLE jobs (
            seq          BIGSERIAL PRIMARY KEY,  -- queue order
            id           TEXT NOT NULL UNIQUE,
            delivery     TEXT UNIQUE,            -- X-Grader-Delivery
            signature    TEXT UNIQUE,
            body_sha256  TEXT,
            student      TEXT NOT NULL,
            assignment   TEXT NOT NULL,
            source       TEXT NOT NULL,
            status       TEXT NOT NULL CHECK (status IN ('queued', 'running', 'graded', 'failed')),
            attempts     INTEGER NOT NULL DEFAULT 0,
            lease_owner  TEXT,
            lease_until  DOUBLE PRECISION,
            submitted    DOUBLE PRECISION NOT NULL,
            started      DOUBLE PRECISION,
            finished     DOUBLE PRECISION,
            score        DOUBLE PRECISION,
            max_score    DOUBLE PRECISION,
            passed       INTEGER,
            sheet        TEXT,
            reason       TEXT,
            report_dir   TEXT,
            callback_url TEXT,
            lti          TEXT,
            depth        TEXT,                   -- a self-check's depth; NULL for a submission
            link         TEXT                    -- a self-check's GitHub link
        )""",
        "CREATE INDEX jobs_by_status ON jobs (status, seq)",
        "CREATE INDEX jobs_by_student ON jobs (student, submitted)",
        "CREATE TABLE files (job_id TEXT PRIMARY KEY REFERENCES jobs (id), notebook BYTEA NOT NULL, model BYTEA)",
        "CREATE TABLE events (id BIGSERIAL PRIMARY KEY, job_id TEXT NOT NULL, at DOUBLE PRECISION NOT NULL, "
        "kind TEXT NOT NULL, attempt INTEGER NOT NULL, detail TEXT)",
        "CREATE INDEX events_by_job ON events (job_id)",
        "CREATE TABLE deliveries (id BIGSERIAL PRIMARY KEY, job_id TEXT NOT NULL, "
        "kind TEXT NOT NULL CHECK (kind IN ('callback', 'lti')), "
        "state TEXT NOT NULL CHECK (state IN ('pending', 'sending', 'sent', 'failed')), "
        "attempts INTEGER NOT NULL DEFAULT 0, lease_owner TEXT, lease_until DOUBLE PRECISION, last_error TEXT, "
        "updated DOUBLE PRECISION, UNIQUE (job_id, kind))",
        "CREATE INDEX deliveries_by_state ON deliveries (state, id)",
        "CREATE TABLE lti_states (state TEXT PRIMARY KEY, data TEXT NOT NULL, expires DOUBLE PRECISION NOT NULL)",
        "CREATE TABLE lti_nonces (nonce TEXT PRIMARY KEY, expires DOUBLE PRECISION NOT NULL)",
        "CREATE TABLE shared (name TEXT PRIMARY KEY, value BYTEA NOT NULL)",
    )),
    Migration(2, "lanes: jobs.lane and jobs.needs_gpu, and the indexes of the claim's order (lanes.py)", (
        *(f"ALTER TABLE jobs ADD COLUMN {column}" for column in lanes.COLUMNS), lanes.BACKFILL, *lanes.INDEXES,
    )),
    Migration(3, "LTI records: course rosters (NRPS) and line items found or made (AGS)", (
        LTI_RECORDS.format(real="DOUBLE PRECISION"),
    )),
)


def redact(url: str) -> str:
    """The URL without its password, for messages and logs."""
    return re.sub(r"(://[^:/@]*):[^@/]*@", r"\1:***@", url)


class _Db:
    """A connection that takes the `?` placeholders SQLStore writes (psycopg's are `%s`)."""

    def __init__(self, connection: psycopg.Connection):
        self.connection = connection

    def execute(self, sql: str, args: tuple = ()) -> psycopg.Cursor:
        return self.connection.execute(sql.replace("?", "%s"), args)


class _Pool:
    """At most `size` connections, each used by one thread at a time; a broken one is dropped, not reused."""

    def __init__(self, url: str, size: int):
        self.url = url
        self._slots = threading.BoundedSemaphore(size)
        self._idle: queue.LifoQueue[psycopg.Connection] = queue.LifoQueue()

    def _connect(self) -> psycopg.Connection:
        try:
            return psycopg.connect(self.url, autocommit=True, connect_timeout=10)
        except psycopg.OperationalError as exc:
            detail = " ".join(str(exc).split())
            raise GraderError(f"cannot connect to the PostgreSQL store ({detail})", where=redact(self.url),
                              fix="check the URL (postgresql://USER:PASSWORD@HOST:PORT/DATABASE), that the server "
                                  "runs, and that it lets this user in; create the database first (createdb)") from None

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection]:
        with self._slots:
            try:
                connection = self._idle.get_nowait()
            except queue.Empty:
                connection = self._connect()
            try:
                yield connection
            finally:
                if connection.closed or connection.broken:
                    connection.close()
                else:
                    self._idle.put(connection)

    def close(self) -> None:
        while True:
            try:
                self._idle.get_nowait().close()
            except queue.Empty:
                return


class PostgresStore(SQLStore):
    MIGRATIONS = POSTGRES_MIGRATIONS
    FOR_UPDATE = " FOR UPDATE"
    SKIP_LOCKED = " FOR UPDATE SKIP LOCKED"
    EVENT_ORDER = "id"

    def __init__(self, url: str, *, pool_size: int = POOL_SIZE):
        self.url, self.where = url, redact(url)
        self._pool = _Pool(url, pool_size)
        try:
            with self._tx() as db:
                db.execute("SELECT pg_advisory_xact_lock(?)", (MIGRATION_LOCK,))  # held until this transaction ends
                self._migrate(db)
        except BaseException:
            self._pool.close()
            raise

    @contextmanager
    def _read(self) -> Iterator[_Db]:
        with self._pool.connection() as connection:
            yield _Db(connection)

    @contextmanager
    def _tx(self) -> Iterator[_Db]:
        with self._pool.connection() as connection, connection.transaction():
            yield _Db(connection)

    def submit(self, new: NewJob, **kw):
        """SQLStore.submit; a delivery id or signature first used by a concurrent request on another node makes the
        insert conflict: tried once more, it then finds that job."""
        try:
            return super().submit(new, **kw)
        except psycopg.errors.UniqueViolation:
            return super().submit(new, **kw)

    def _before_submit(self, db: _Db, new: NewJob) -> None:
        # one student's submits through one source wait for each other, so the rate limit's count is current
        db.execute("SELECT pg_advisory_xact_lock(hashtextextended(?, 0))", (f"{new.source}\x1f{new.student}",))

    def _recover_where(self) -> tuple[str, tuple, str]:
        # other servers may be grading: only jobs whose lease ran out were left by a stopped one
        return ("lease_until < ?", (time.time(),),
                "the server grading it stopped (or was killed): its lease ran out; re-run from the start")

    def close(self) -> None:
        self._pool.close()
