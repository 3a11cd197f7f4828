"""Who the sandbox runs as on the host: the grader's own uid, or an unprivileged one when the grader is root.

bubblewrap maps the one uid inside its user namespace to the uid that started it. Started by root, every sandboxed
process would be uid 0 to the host kernel: it could write whatever root's owner bits allow wherever a mount lets it
(that is how /proc/sys was reached once). So a root grader starts bwrap as `GRADER_SANDBOX_UID` (default 65534,
"nobody"; gid `GRADER_SANDBOX_GID`, default the same number, no supplementary groups), in the child between fork
and exec, after the job's limits are in place (the cgroup move needs root).

That uid must reach everything bwrap binds. What lies under a folder it cannot enter (the interpreter under
/root/.pyenv, the grading environment and staged MNIST under root's cache, a scratch in a 0700 temporary folder) is
staged first: in the same child, still root, in a private mount namespace of its own, a tmpfs on an empty folder
(`stage_point()`) gets one bind mount per such source, and bwrap binds from there. The host's mounts and
permissions are never changed; the stage vanishes with the child's namespace. The scratch tree is handed to the
sandbox uid (`hand_over`): the host, root, still reads and removes it.
"""

from __future__ import annotations

import atexit
import os
import stat
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from grader.errors import GraderError
from grader.sandbox import nested

DEFAULT_UID = 65534
UID_VARIABLE, GID_VARIABLE = "GRADER_SANDBOX_UID", "GRADER_SANDBOX_GID"


@dataclass(frozen=True)
class SandboxUser:
    """The host uid and gid bwrap runs as; `dropped`: the grader is root and gives them up for these."""

    uid: int
    gid: int
    dropped: bool

    @property
    def described(self) -> str:
        """What `limits_used` says about it."""
        if self.dropped:
            return f"sandbox as host uid {self.uid} gid {self.gid} (the grader runs as root)"
        return f"sandbox as the grader's own uid {self.uid}"


def sandbox_user() -> SandboxUser:
    """Root: the unprivileged uid of GRADER_SANDBOX_UID (default 65534); anyone else: their own uid."""
    if os.geteuid() != 0:
        return SandboxUser(os.geteuid(), os.getegid(), dropped=False)
    uid = _id_from(UID_VARIABLE, str(DEFAULT_UID))
    gid = _id_from(GID_VARIABLE, str(uid))
    return SandboxUser(uid, gid, dropped=True)


def _id_from(variable: str, default: str) -> int:
    raw = os.environ.get(variable, default)
    if not raw.isdigit() or int(raw) == 0 or int(raw) >= 2**32 - 1:
        raise GraderError(f"{variable}={raw!r} is not a usable id for the sandbox: it must be a number other than 0 "
                          "(root) that no login or service of this machine uses",
                          where=variable,
                          fix=f"unset it (the default is {DEFAULT_UID}, nobody) or set it to a spare uid")
    return int(raw)


def device_groups(nodes: tuple[str, ...], user: SandboxUser) -> tuple[int, ...]:
    """The groups through which the sandbox uid may open `nodes` (GPU device nodes that are 0660 root:video on some
    hosts): only for a root grader, which otherwise gives up every group. Only the nodes bound in are visible inside."""
    if not user.dropped:
        return ()
    found = set()
    for node in nodes:
        info = os.stat(node)
        if info.st_mode & 0o006 != 0o006 and info.st_mode & 0o060 == 0o060 and info.st_gid != 0:
            found.add(info.st_gid)
    return tuple(sorted(found))


def can_reach(path: str, user: SandboxUser) -> bool:
    """Whether `user` (no supplementary groups) can look `path` up: search permission on every folder above it."""
    real = Path(os.path.realpath(path))
    for folder in reversed(real.parents):
        mode = os.stat(folder)
        if mode.st_uid == user.uid:
            bit = stat.S_IXUSR
        elif mode.st_gid == user.gid:
            bit = stat.S_IXGRP
        else:
            bit = stat.S_IXOTH
        if not mode.st_mode & bit:
            return False
    return True


def hand_over(scratch: Path, user: SandboxUser) -> None:
    """Give the scratch tree the host made (folders for outputs, job files) to the sandbox uid, without following a
    link; a file with more than one name is left alone (chowning it would hand over its other name too)."""
    if not user.dropped:
        return
    for top, folders, files in os.walk(scratch):
        for name in (top, *(os.path.join(top, f) for f in (*folders, *files))):
            info = os.lstat(name)
            if info.st_uid == user.uid or (not stat.S_ISDIR(info.st_mode) and info.st_nlink > 1):
                continue
            os.chown(name, user.uid, user.gid, follow_symlinks=False)


# Where the stage point may go: the first of these that the sandbox uid can walk into. bwrap, run as that uid,
# resolves each bind source through the point's parents, and a private TMPDIR (`mktemp -d`, 0700) would stop it.
_STAGE_PARENTS = (None, "/tmp", "/var/tmp", "/dev/shm")


def _reachable_by_others(folder: str) -> bool:
    """Whether a uid that is neither the owner nor in the group (the sandbox uid) can walk into `folder`."""
    path = Path(folder).resolve()
    try:
        return all(os.stat(p).st_mode & stat.S_IXOTH for p in (path, *path.parents))
    except OSError:
        return False


def _stage_parent() -> str:
    for folder in _STAGE_PARENTS:
        folder = folder or tempfile.gettempdir()
        if _reachable_by_others(folder):
            return folder
    raise GraderError("no temporary folder here can be entered by the sandbox's unprivileged uid "
                      f"({', '.join(f or '$TMPDIR' for f in _STAGE_PARENTS)} are all closed to others)",
                      fix="give /tmp its usual mode (chmod 1777 /tmp), or set TMPDIR to a folder every user may enter")


_STAGE_PREFIX = "mnist-grader-stage-"
_ORPHAN_AGE_S = 24 * 3600
_stage_points: dict[int, str] = {}
_stage_lock = threading.Lock()


def _stage_point_of(pid: int) -> str:
    # Under a lock: two grading threads that asked at once would each make a folder, and a Launch that got one
    # for its first source and the other for a later one mounted its tmpfs on the first and made the later
    # source's mount point on the host's disk.
    with _stage_lock:
        point = _stage_points.get(pid)
        if point is None or not os.path.isdir(point):  # a /tmp cleaner (systemd-tmpfiles) may remove an old one
            parent = _stage_parent()
            _remove_orphaned_stage_points(parent)
            point = tempfile.mkdtemp(prefix=f"{_STAGE_PREFIX}{pid}-", dir=parent)
            os.chmod(point, 0o755)  # stays empty on the host: the binds are made in each child's own mount namespace
            atexit.register(_remove_stage_point, pid, point)
            _stage_points[pid] = point
        return point


def _remove_orphaned_stage_points(parent: str) -> None:
    """Remove the empty stage points of processes that are gone (one killed, or a forked child that left with
    os._exit, never ran its atexit). Only empty folders go: rmdir leaves anything else alone."""
    try:
        names = os.listdir(parent)
    except OSError:
        return
    for name in names:
        pid = name[len(_STAGE_PREFIX):].split("-", 1)[0]
        if not name.startswith(_STAGE_PREFIX) or not pid.isdigit() or os.path.exists(f"/proc/{pid}"):
            continue
        path = os.path.join(parent, name)
        try:
            if time.time() - os.lstat(path).st_mtime > _ORPHAN_AGE_S:  # another pid namespace's may look gone
                os.rmdir(path)
        except OSError:
            pass


def _remove_stage_point(pid: int, point: str) -> None:
    if os.getpid() == pid:  # not a forked child's exit
        try:
            os.rmdir(point)
        except OSError:
            pass


def stage_point() -> str:
    """This process's empty folder under which a child mounts its stage."""
    return _stage_point_of(os.getpid())


@dataclass
class Launch:
    """How one bwrap starts: as whom, and which sources it reads from the child's stage instead of their host path.

    `user` None: no sandbox (trusted code runs as the grader)."""

    user: SandboxUser | None
    groups: tuple[int, ...] = ()  # supplementary groups kept: those that open the GPU device nodes bound in
    staged: list[tuple[str, str]] = field(default_factory=list)  # (host path, staged path)
    point: str | None = None  # the stage point every staged path lies under, chosen at the first one

    @property
    def described(self) -> str:
        """What `limits_used` says about who ran the command."""
        return self.user.described if self.user is not None else f"no sandbox: ran as the grader's uid {os.geteuid()}"

    def after(self, limits_preexec: Callable[[], None]) -> Callable[[], None]:
        """The child's preexec: the job's limits first (moving into the cgroup needs the grader's uid), then this."""
        def preexec() -> None:
            limits_preexec()
            self.enter()
        return preexec

    def source(self, path: str) -> str:
        """The path bwrap binds `path` from: itself where the sandbox uid can reach it, else its place on the stage."""
        if self.user is None or not self.user.dropped or can_reach(path, self.user):
            return path
        for host, staged in self.staged:
            if host == path:
                return staged
        if self.point is None:
            self.point = stage_point()
        staged = os.path.join(self.point, str(len(self.staged)))
        self.staged.append((path, staged))
        return staged

    def enter(self) -> None:
        """In the child, between fork and exec (after the job's limits): mount the stage, then become the sandbox
        uid."""
        if self.user is None or not self.user.dropped:
            return
        if self.staged:
            nested.private_mounts()
            if self.point is None or any(os.path.dirname(staged) != self.point for _, staged in self.staged):
                raise RuntimeError("a staged source lies outside this launch's stage point")  # would land on the host
            nested.mount("tmpfs", self.point, "tmpfs", nested.MS_NOSUID | nested.MS_NODEV, "size=64k,mode=0755")
            for host, staged in self.staged:
                if os.path.isdir(host):
                    os.mkdir(staged)
                else:
                    os.close(os.open(staged, os.O_CREAT | os.O_WRONLY, 0o644))
                nested.mount(host, staged, None, nested.MS_BIND | nested.MS_REC)
        os.setgroups(list(self.groups))
        os.setgid(self.user.gid)
        os.setuid(self.user.uid)

