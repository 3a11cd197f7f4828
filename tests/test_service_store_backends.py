"""What differs between the stores, and what only a shared store needs: schema migrations (from an empty store and
from an older one, a newer one refused, two servers starting at once), claims by several servers at once on
PostgreSQL, values shared by every server, and what a bad PostgreSQL URL says. The queue's rules themselves run on
both stores in test_service_units.py."""

from __future__ import annotations

import sqlite3
import sys
import threading

import psycopg
import pytest

from grader.errors import GraderError
from grader.service import store_postgres
from grader.service.migrations import Migration
from grader.service.store import SQLITE_MIGRATIONS, JobResult, NewJob, SQLiteStore, open_store
from grader.service.store_postgres import POSTGRES_MIGRATIONS, PostgresStore

SQLITE_VERSIONS = [m.version for m in SQLITE_MIGRATIONS]  # 1, 2, 3, ...: every migration, in order
POSTGRES_VERSIONS = [m.version for m in POSTGRES_MIGRATIONS]

OLD_SQLITE = [statement for statement in SQLITE_MIGRATIONS[0].statements]  # the first release: no schema_version


def _new(student="s1", **kw) -> NewJob:
    return NewJob(student=student, assignment="svc-static", source="api", notebook=b"{}", **kw)


def _together(threads: list, stores: list, *, timeout: float) -> None:
    """Run the threads at once, wait for them, then close the stores they used."""
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
    for store in stores:
        store.close()


def _versions(rows) -> list[int]:
    return [version for (version,) in rows]


def test_an_empty_sqlite_store_gets_every_migration_in_order(tmp_path):
    store = SQLiteStore(tmp_path / "grader.db")
    store.close()
    db = sqlite3.connect(tmp_path / "grader.db")
    assert _versions(db.execute("SELECT version FROM schema_version ORDER BY version")) == SQLITE_VERSIONS
    db.close()


def test_a_sqlite_store_of_the_first_release_is_migrated_and_keeps_its_jobs(tmp_path):
    db = sqlite3.connect(tmp_path / "grader.db")
    for statement in OLD_SQLITE:
        db.execute(statement)
    db.execute("INSERT INTO jobs (id, student, assignment, source, status, submitted) "
               "VALUES ('old', 's0', 'svc-static', 'api', 'queued', 1)")
    db.execute("INSERT INTO files (job_id, notebook) VALUES ('old', x'7b7d')")
    db.commit()
    db.close()
    store = SQLiteStore(tmp_path / "grader.db")
    try:
        job = store.claim("w", 30, 3)
        assert (job.id, job.selfcheck) == ("old", False)
        check, _ = store.submit(_new(depth="static"))  # the columns migration 2 added
        assert store.get(check.id).depth == "static"
    finally:
        store.close()
    db = sqlite3.connect(tmp_path / "grader.db")
    found = db.execute("SELECT version, what FROM schema_version ORDER BY version").fetchall()
    db.close()
    assert [v for v, _ in found] == SQLITE_VERSIONS and "made before schema_version" in found[0][1]
    assert "made before" not in found[1][1]  # applied now


def test_a_sqlite_store_that_already_had_the_self_check_columns_is_adopted_without_altering(tmp_path):
    db = sqlite3.connect(tmp_path / "grader.db")
    for migration in SQLITE_MIGRATIONS[:2]:
        for statement in migration.statements:
            db.execute(statement)
    db.commit()
    db.close()
    SQLiteStore(tmp_path / "grader.db").close()
    db = sqlite3.connect(tmp_path / "grader.db")
    found = db.execute("SELECT version, what FROM schema_version ORDER BY version").fetchall()
    db.close()
    assert ([v for v, _ in found] == SQLITE_VERSIONS and "made before" in found[1][1]
            and "made before" not in found[2][1])


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_store_migrated_by_a_newer_grader_is_refused_with_what_to_do(backend, tmp_path, request):
    spec = tmp_path / "grader.db" if backend == "sqlite" else request.getfixturevalue("postgres").create_database()
    open_store(spec).close()
    if backend == "sqlite":
        db = sqlite3.connect(spec)
        db.execute("INSERT INTO schema_version (version, applied, what) VALUES (99, 0, 'future')")
        db.commit()
        db.close()
    else:
        with psycopg.connect(spec, autocommit=True) as db:
            db.execute("INSERT INTO schema_version (version, applied, what) VALUES (99, 0, 'future')")
    with pytest.raises(GraderError) as err:
        open_store(spec)
    assert "schema is version 99, newer than this grader knows" in err.value.what
    assert "upgrade the grader on this node" in err.value.fix


def test_a_postgresql_store_is_migrated_from_empty_and_from_an_older_version(postgres, monkeypatch):
    url = postgres.create_database()
    PostgresStore(url).close()  # from empty: every version
    PostgresStore(url).close()  # again: nothing to do
    with psycopg.connect(url) as db:
        assert _versions(db.execute("SELECT version FROM schema_version ORDER BY version")) == POSTGRES_VERSIONS
    later = Migration(POSTGRES_VERSIONS[-1] + 1, "a later release's column",
                      ("ALTER TABLE jobs ADD COLUMN later TEXT",))
    monkeypatch.setattr(PostgresStore, "MIGRATIONS", (*store_postgres.POSTGRES_MIGRATIONS, later))
    store = PostgresStore(url)
    store.close()
    with psycopg.connect(url) as db:
        assert _versions(db.execute("SELECT version FROM schema_version ORDER BY version")) == [
            *POSTGRES_VERSIONS, later.version]
        assert db.execute("SELECT later FROM jobs").fetchall() == []


def test_servers_starting_at_once_on_an_empty_postgresql_store_migrate_it_once(postgres):
    url = postgres.create_database()
    opened, errors = [], []

    def start():
        try:
            opened.append(PostgresStore(url))
        except Exception as exc:  # shown by the assert below
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(4)]
    _together(threads, opened, timeout=60)
    assert errors == [] and len(opened) == 4
    with psycopg.connect(url) as db:
        assert _versions(db.execute("SELECT version FROM schema_version ORDER BY version")) == POSTGRES_VERSIONS


def test_servers_claiming_at_once_on_postgresql_take_each_job_once(postgres):
    url = postgres.create_database()
    stores = [PostgresStore(url) for _ in range(2)]
    for i in range(40):
        stores[0].submit(_new(student=f"s{i}"))
    taken: list[str] = []
    lock = threading.Lock()

    def work(store, owner):
        while (job := store.claim(owner, 30, 3)) is not None:
            assert store.complete(job, owner, JobResult(1.0, 1.0, True, {}, "x"))
            with lock:
                taken.append(job.id)

    threads = [threading.Thread(target=work, args=(stores[i % 2], f"node{i % 2}-w{i}")) for i in range(6)]
    _together(threads, stores, timeout=120)
    assert len(taken) == 40 and len(set(taken)) == 40
    with psycopg.connect(url) as db:
        claims = db.execute("SELECT COUNT(*) FROM events WHERE kind = 'claimed'").fetchone()[0]
    assert claims == 40  # no job was claimed twice


def test_a_rate_limit_holds_across_servers_submitting_at_once(postgres):
    url = postgres.create_database()
    stores = [PostgresStore(url) for _ in range(2)]
    accepted, limited = [], []

    def send(store):
        for _ in range(5):
            try:
                accepted.append(store.submit(_new(), rate=(4, 600))[0].id)
            except Exception as exc:
                limited.append(type(exc).__name__)

    threads = [threading.Thread(target=send, args=(store,)) for store in stores]
    _together(threads, stores, timeout=60)
    assert len(accepted) == 4 and limited == ["RateLimited"] * 6


def test_the_same_delivery_sent_to_two_servers_at_once_is_one_job(postgres):
    url = postgres.create_database()
    stores = [PostgresStore(url) for _ in range(4)]
    ids = []
    threads = [threading.Thread(target=lambda s=s, i=i: ids.append(s.submit(_new(student=f"x{i}", delivery="d-1",
                                                                                  body_sha256="a"))[0].id))
               for i, s in enumerate(stores)]
    _together(threads, stores, timeout=60)
    assert len(ids) == 4 and len(set(ids)) == 1


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_shared_value_is_made_once_and_read_by_every_server(backend, tmp_path, request):
    spec = tmp_path / "grader.db" if backend == "sqlite" else request.getfixturevalue("postgres").create_database()
    store = open_store(spec)
    try:
        assert store.shared_value("lti-key", lambda: b"first") == b"first"
        assert store.shared_value("lti-key", lambda: b"second") == b"first"
    finally:
        store.close()


def test_a_postgresql_url_that_cannot_be_reached_says_where_and_what_to_do():
    with pytest.raises(GraderError) as err:
        open_store("postgresql://grader:s3cret@127.0.0.1:1/grader")
    assert "cannot connect to the PostgreSQL store" in err.value.what
    assert err.value.where == "postgresql://grader:***@127.0.0.1:1/grader"  # no password in messages
    assert "createdb" in err.value.fix


def test_a_postgresql_url_without_psycopg_installed_says_how_to_install_it(monkeypatch):
    monkeypatch.delitem(sys.modules, "grader.service.store_postgres")
    monkeypatch.setitem(sys.modules, "psycopg", None)  # as if not installed: importing it fails
    with pytest.raises(GraderError) as err:
        open_store("postgresql://grader@127.0.0.1/grader")
    assert "needs psycopg 3" in err.value.what and err.value.where == "--store"
    assert "pip install -e '.[postgres]'" in err.value.fix
