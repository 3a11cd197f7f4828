"""A real unprivileged user for the tests that show the grader without root: made with useradd when the tests run as
root (removed afterwards), else the user running them. Nothing of the host is weakened for longer than the test: the
folders above the interpreter that the user cannot enter (/root is 0700 where the interpreter is under
/root/.pyenv) get an ACL entry for that one user, removed again with the folder's mode restored.
"""

from __future__ import annotations

import fcntl
import os
import pwd
import shutil
import stat
import struct
import subprocess
import sys
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

_ACL = "system.posix_acl_access"
_USER_OBJ, _USER, _GROUP_OBJ, _MASK, _OTHER = 0x01, 0x02, 0x04, 0x10, 0x20
_UNDEFINED = 0xFFFFFFFF


@dataclass(frozen=True)
class User:
    name: str
    uid: int
    gid: int
    made: bool  # made by the test (root), else the user running the tests

    def run(self, argv: Sequence[str], *, env: dict[str, str], cwd: Path,
            timeout: float) -> subprocess.CompletedProcess:
        """Run `argv` as this user, with no groups but its own, and only `env` (plus PATH)."""
        environ = {"PATH": f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", **env}
        ids = dict(user=self.uid, group=self.gid, extra_groups=[]) if self.made else {}
        return subprocess.run(list(argv), env=environ, cwd=cwd, capture_output=True, text=True, timeout=timeout, **ids)


@contextmanager
def unprivileged_user(home: Path) -> Iterator[User]:
    """A user that is not root, whose home is `home` (made and given to it); removed again if the test made it."""
    home.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        yield User(pwd.getpwuid(os.geteuid()).pw_name, os.geteuid(), os.getegid(), made=False)
        return
    useradd = shutil.which("useradd")
    if useradd is None:
        pytest.fail("these tests run as root and must make an unprivileged user to show the grader works without root, "
                    "but useradd is not installed\n  -> apt-get install -y passwd, or run the tests as a normal user",
                    pytrace=False)
    name = f"mg{uuid.uuid4().hex[:8]}"
    made = subprocess.run([useradd, "--no-create-home", "--home-dir", str(home), "--shell", "/usr/sbin/nologin",
                           "--user-group", name], capture_output=True, text=True)
    if made.returncode != 0:
        pytest.fail(f"useradd {name} failed ({made.returncode}): {made.stderr.strip()}\n"
                    "  -> the tests need to make a throw-away user when they run as root", pytrace=False)
    entry = pwd.getpwnam(name)
    try:
        os.chown(home, entry.pw_uid, entry.pw_gid)
        with traversal_for(entry.pw_uid, [Path(sys.executable)]):
            yield User(name, entry.pw_uid, entry.pw_gid, made=True)
    finally:
        subprocess.run(["userdel", name], capture_output=True, text=True)


@contextmanager
def traversal_for(uid: int, paths: Sequence[Path]) -> Iterator[None]:
    """Let `uid` look up `paths`: an ACL entry granting search (x) to that uid alone on each folder above them it
    cannot enter; afterwards the ACL is removed and the folder's mode restored."""
    granted: list[tuple[Path, int]] = []
    # Two test runs on one machine (a CI run beside a developer's) would each find the other's entry: the lock makes
    # the second wait until the first has removed it.
    lock = open(Path(os.environ.get("TMPDIR", "/tmp")) / "mnist-grader-traversal-acl.lock", "a")
    fcntl.flock(lock, fcntl.LOCK_EX)
    try:
        for path in paths:
            for folder in reversed(Path(os.path.realpath(path)).parents):
                info = os.stat(folder)
                if info.st_mode & stat.S_IXOTH or any(f == folder for f, _ in granted):
                    continue
                try:
                    os.getxattr(folder, _ACL)
                    pytest.fail(f"{folder} already has an access ACL; the test will not rewrite it", pytrace=False)
                except OSError:
                    pass
                os.setxattr(folder, _ACL, _search_acl(info.st_mode, uid))
                granted.append((folder, stat.S_IMODE(info.st_mode)))
        yield
    finally:
        for folder, mode in reversed(granted):
            os.removexattr(folder, _ACL)
            os.chmod(folder, mode)  # the ACL's mask became the group bits
        lock.close()  # releases the lock


def _search_acl(mode: int, uid: int) -> bytes:
    """An access ACL equal to `mode` plus search (x) for `uid` (Linux's xattr layout: version 2, then entries)."""
    entries = [(_USER_OBJ, (mode >> 6) & 7, _UNDEFINED), (_USER, 1, uid), (_GROUP_OBJ, (mode >> 3) & 7, _UNDEFINED),
               (_MASK, ((mode >> 3) & 7) | 1, _UNDEFINED), (_OTHER, mode & 7, _UNDEFINED)]
    return struct.pack("<I", 2) + b"".join(struct.pack("<HHI", *e) for e in entries)
