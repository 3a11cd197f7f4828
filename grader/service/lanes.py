"""Which waiting job a worker takes next: lanes, fair shares across assignments, and the GPU lane.

Every job is in one lane. Self-checks go first (a student waits at the notebook for them, and they take a
second); submissions and regrades are shared fairly across assignments: the next job is of the assignment with
the fewest jobs running now, then of the one served least recently, so one course's deadline burst of 300
uploads neither delays a self-check nor queues another course behind it. Within one assignment, submissions go
before regrades (a student waits for a first grade; a regrade changes one they already have), then oldest first.

A job whose rubric requires a GPU (`limits: {gpu: required}`) is claimed only by a node that has one.

The rules are SQL fragments valid in SQLite and PostgreSQL alike (CASE and correlated subqueries over the
`jobs` table, no dialect functions), so that every store orders its claim the same way: `claim_clauses` gives
the WHERE and ORDER BY of the claim query and their parameters, with the store's placeholder.
"""

from __future__ import annotations

from typing import Optional

SELFCHECK, SUBMISSION, REGRADE = "selfcheck", "submission", "regrade"
LANES = (SELFCHECK, SUBMISSION, REGRADE)

# The columns a store's `jobs` table has for lanes (portable DDL), and what adds them to a store made before.
COLUMNS = (f"lane TEXT NOT NULL DEFAULT '{SUBMISSION}' CHECK (lane IN ('{SELFCHECK}', '{SUBMISSION}', '{REGRADE}'))",
           "needs_gpu INTEGER NOT NULL DEFAULT 0")
BACKFILL = f"UPDATE jobs SET lane = '{SELFCHECK}' WHERE depth IS NOT NULL"  # after adding `lane` to an older store
# What keeps the claim's subqueries to an index look-up each (2,000 waiting jobs: 3 ms a claim, not 600).
INDEXES = ("CREATE INDEX IF NOT EXISTS jobs_by_assignment ON jobs (assignment, status, lane)",
           "CREATE INDEX IF NOT EXISTS jobs_by_assignment_start ON jobs (assignment, started)")

# A job the claim may take: waiting, or running under a lease that ran out (its worker died).
_WAITING = "(status = 'queued' OR (status = 'running' AND lease_until < {mark}))"
# Jobs of the same assignment (not self-checks) running under a live lease now.
_RUNNING = ("(SELECT COUNT(*) FROM jobs AS busy WHERE busy.assignment = jobs.assignment "
            f"AND busy.lane <> '{SELFCHECK}' AND busy.status = 'running' AND busy.lease_until >= {{mark}})")
# When the assignment's latest job started, 0 for never (PostgreSQL sorts NULL last, SQLite first). ORDER BY
# ... LIMIT 1 rather than MAX(): it walks jobs_by_assignment_start backwards and stops at the first match.
_SERVED = ("COALESCE((SELECT served.started FROM jobs AS served WHERE served.assignment = jobs.assignment "
           f"AND served.lane <> '{SELFCHECK}' AND served.started IS NOT NULL ORDER BY served.started DESC LIMIT 1), 0)")
_ORDER = (f"CASE WHEN lane = '{SELFCHECK}' THEN 0 ELSE 1 END, "
          f"CASE WHEN lane = '{SELFCHECK}' THEN 0 ELSE {_RUNNING} END, "
          f"CASE WHEN lane = '{SELFCHECK}' THEN 0 ELSE {_SERVED} END, "
          f"CASE WHEN lane = '{REGRADE}' THEN 1 ELSE 0 END, "
          "seq")


def lane_of(depth: Optional[str], regrade: bool) -> str:
    return SELFCHECK if depth is not None else REGRADE if regrade else SUBMISSION


def claim_clauses(now: float, *, gpu: bool, mark: str = "?") -> tuple[str, str, tuple]:
    """(WHERE, ORDER BY, parameters) of the claim: `SELECT ... FROM jobs WHERE {where} ORDER BY {order} LIMIT 1`
    (the table must be `jobs`, unaliased; PostgreSQL adds FOR UPDATE SKIP LOCKED). `mark` is the store's
    placeholder: ? for sqlite3, %s for psycopg. A node without a GPU never sees a job that needs one."""
    where = _WAITING.format(mark=mark) + ("" if gpu else " AND needs_gpu = 0")
    return where, _ORDER.format(mark=mark), (now, now)
