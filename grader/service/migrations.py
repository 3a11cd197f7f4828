"""Schema migrations for both stores: an ordered list per backend, applied at start in one transaction under the
backend's lock (SQLite: the store's lock file and BEGIN IMMEDIATE; PostgreSQL: an advisory lock, so that two nodes
starting at once do not both migrate). `schema_version` records each migration applied.

A store made by a newer grader (a version this one does not know) is refused: an old node must not write rows
a newer schema reads differently.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from grader.errors import GraderError

VERSION_TABLE = ("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, applied DOUBLE PRECISION "
                 "NOT NULL, what TEXT NOT NULL)")


@dataclass(frozen=True)
class Migration:
    version: int
    what: str
    statements: tuple[str, ...]


def current_version(db) -> int:
    return db.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version").fetchone()[0]


def pending(current: int, migrations: Sequence[Migration], where: str) -> list[Migration]:
    """The migrations after `current`, in order; a store newer than `migrations` is refused."""
    latest = migrations[-1].version
    if current > latest:
        raise GraderError(f"the store's schema is version {current}, newer than this grader knows (version {latest})",
                          where=where, fix="upgrade the grader on this node to the version that migrated the store "
                                           "(every node sharing a store must run the same grader)")
    return [migration for migration in migrations if migration.version > current]


def record(db, migration: Migration, what: str = "") -> None:
    db.execute("INSERT INTO schema_version (version, applied, what) VALUES (?, ?, ?)",
               (migration.version, time.time(), what or migration.what))


def apply(db, current: int, migrations: Sequence[Migration], where: str) -> list[int]:
    """Apply what is pending on `db` (inside the caller's transaction and lock); the versions applied."""
    applied = []
    for migration in pending(current, migrations, where):
        for statement in migration.statements:
            db.execute(statement)
        record(db, migration)
        applied.append(migration.version)
    return applied
