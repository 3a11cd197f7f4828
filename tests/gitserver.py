"""A real git server on 127.0.0.1 for link submissions: bare repositories served over git's dumb HTTP protocol, and
git's own url.<base>.insteadOf (set through the environment) pointing https://github.com/ at it."""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest


def git(*args: str, cwd: Path, when: str = "2026-11-01T12:00:00+00:00") -> str:
    """Runs git with a fixed author and date (the same commits on every run); its stdout."""
    env = dict(os.environ, GIT_AUTHOR_DATE=when, GIT_COMMITTER_DATE=when, GIT_AUTHOR_NAME="s",
               GIT_AUTHOR_EMAIL="s@example.org", GIT_COMMITTER_NAME="s", GIT_COMMITTER_EMAIL="s@example.org")
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout.strip()


def publish(work: Path, served: Path, repo: str) -> None:
    """Serve the repository in `work` as github.com/<repo> (`owner/name`): a bare clone under `served`, reachable
    as both .../name and .../name.git."""
    target = served / f"{repo}.git"
    target.parent.mkdir(parents=True, exist_ok=True)
    git("clone", "-q", "--bare", str(work), str(target), cwd=work)
    git("update-server-info", cwd=target)
    shutil.copytree(target, served / repo)


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args):  # the server's access log is noise in a failure's output
        pass


@contextlib.contextmanager
def serving(served: Path) -> Iterator[str]:
    """A dumb-HTTP server of the folder `served` on 127.0.0.1; yields its base URL."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(served)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    finally:
        httpd.shutdown()
        httpd.server_close()


def github_at(base: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """git's own configuration, from the environment: https://github.com/ means the server at `base`."""
    monkeypatch.setenv("GIT_CONFIG_COUNT", "1")
    monkeypatch.setenv("GIT_CONFIG_KEY_0", f"url.{base}.insteadOf")
    monkeypatch.setenv("GIT_CONFIG_VALUE_0", "https://github.com/")
