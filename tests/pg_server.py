"""A real PostgreSQL server for the tests: Debian's `postgresql` binaries, `initdb` into a temporary folder, listening
on 127.0.0.1 (a free port) and a unix socket in that folder, stopped when the tests end. Each test gets a database
of its own. As root, the server runs as the `postgres` system user (initdb refuses root), else as the user running
the tests. Missing binaries fail the tests with how to install them: CI installs them (test.sh), nothing skips.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

DEBIAN = Path("/usr/lib/postgresql")  # Debian keeps the server binaries off PATH, in <version>/bin


def _binaries() -> Path:
    found = sorted((p for p in DEBIAN.glob("*/bin") if p.parent.name.isdigit() and (p / "initdb").exists()),
                   key=lambda p: int(p.parent.name))
    if found:
        return found[-1]
    on_path = shutil.which("initdb")
    if on_path:
        return Path(on_path).parent
    pytest.fail("the PostgreSQL store's tests run a real PostgreSQL server, but its binaries (initdb, postgres) are "
                f"not installed (looked in {DEBIAN}/*/bin and on PATH)\n  -> apt-get install -y postgresql "
                "(test.sh does this)", pytrace=False)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass(frozen=True)
class Postgres:
    host: str
    port: int
    user: str

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{self.user}@{self.host}:{self.port}/{database}"

    def create_database(self) -> str:
        """A fresh, empty database; its URL."""
        import psycopg

        name = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.url(), autocommit=True) as db:
            db.execute(f"CREATE DATABASE {name}")
        return self.url(name)


@contextmanager
def postgres_server() -> Iterator[Postgres]:
    bin_dir = _binaries()
    folder = Path(tempfile.mkdtemp(prefix="grader-pg-"))
    as_root = os.geteuid() == 0
    if as_root:
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            pytest.fail("the tests run as root and PostgreSQL refuses to run as root, but there is no `postgres` "
                        "system user\n  -> apt-get install -y postgresql (it creates the user), or run the tests as a "
                        "normal user", pytrace=False)
        os.chown(folder, owner.pw_uid, owner.pw_gid)
        ids = dict(user=owner.pw_uid, group=owner.pw_gid, extra_groups=[])
    else:
        ids = {}
    data, port = folder / "data", _free_port()
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "LANG": "C.UTF-8"}
    done = subprocess.run([str(bin_dir / "initdb"), "-D", str(data), "--auth=trust", "--username=postgres",
                           "--encoding=UTF8", "--no-sync"], env=env, cwd=folder, capture_output=True, text=True,
                          timeout=120, **ids)
    if done.returncode != 0:
        pytest.fail(f"initdb failed ({done.returncode}) in {data}:\n{done.stdout}\n{done.stderr}", pytrace=False)
    log = folder / "server.log"
    with open(log, "wb") as out:
        server = subprocess.Popen([str(bin_dir / "postgres"), "-D", str(data), "-h", "127.0.0.1", "-p", str(port),
                                   "-k", str(folder), "-c", "fsync=off", "-c", "max_connections=200"],
                                  env=env, cwd=folder, stdout=out, stderr=subprocess.STDOUT, **ids)
    try:
        deadline = time.monotonic() + 60
        while subprocess.run([str(bin_dir / "pg_isready"), "-h", "127.0.0.1", "-p", str(port)],
                             capture_output=True).returncode != 0:
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"postgres did not start (exit {server.poll()}):\n{log.read_text()[-3000:]}",
                            pytrace=False)
            time.sleep(0.2)
        yield Postgres("127.0.0.1", port, "postgres")
    finally:
        server.send_signal(signal.SIGINT)  # fast shutdown: ends the sessions a killed test server left behind
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(10)
        shutil.rmtree(folder, ignore_errors=True)
