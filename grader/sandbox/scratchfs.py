"""The scratch folder as a file system of its own, which the kernel keeps within the job's disk quota.

For one run, a tmpfs with `size=` (bytes) and `nr_inodes=` (files, folders and links) stands in for the
scratch folder. The kernel refuses writes past either (ENOSPC), and it counts what a walk of the tree cannot
see: files deleted while still open, empty files, hard links, folders.

The tmpfs lives in a mount namespace that a small keeper process holds (grader.sandbox.scratch_keeper): a
grader running as root makes a mount namespace; any other user makes a user namespace mapping only its own
uid and gid, where it may mount. The host never mounts anything, so nothing is left mounted if the grader
dies. Its lifetime, in `ScratchFS`:

1. The keeper mounts the tmpfs over the scratch folder in its namespace; what the host put in the folder (the
   notebook, job.json, a model to measure) is copied in, with its owner and mode, and removed from the disk.
2. The sandbox is started in the keeper's namespaces (`enter()`, between fork and exec: setns(2)), so bwrap
   binds the tmpfs as the scratch; read-only binds into the scratch (the staged data) are mounts on top of
   it and do not count. The host watches the file system (`exceeded()`, one statvfs) through a descriptor
   of its root, opened by way of /proc/<keeper>/root.
3. After the sandbox has ended, `close()` copies what it left back into the folder on disk, so the host reads
   run.json, the model and the executed notebook where it always did, and the keeper exits, which frees the
   tmpfs. The copy is the attacker's tree: bounded by the quota it was written under, data extents only
   (a sparse file stays sparse), a hard link stays one file, links are copied as links and never followed,
   FIFOs as FIFOs, and sockets and device nodes are left out, as is (logged) what the disk cannot hold, such
   as a path longer than the system allows.

This module imports nothing but the standard library (a test loads it as an unprivileged user who cannot reach
the grader's dependencies).

Memory: tmpfs pages are memory, charged to the memory cgroup of the process that writes them, so under a
cgroup what a job keeps in its scratch counts against its memory limit too (it cannot exceed `disk_bytes`
either way). Where only rlimits are had, RLIMIT_AS does not count them: the scratch then takes up to
`disk_bytes` of the host's memory (or swap) per job.
"""

from __future__ import annotations

import ctypes
import errno
import logging
import os
import select
import shutil
import stat
import subprocess
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path

log = logging.getLogger(__name__)

_KEEPER = Path(__file__).with_name("scratch_keeper.py")
_START_SECONDS = 30.0
_CHUNK = 1 << 20
_NO_ROOM = (errno.ENOSPC, errno.EDQUOT)
CLONE_NEWNS = 0x00020000
CLONE_NEWUSER = 0x10000000


class ScratchFSError(OSError):
    """The scratch file system cannot be had on this host (the reason is the message)."""


@dataclass(frozen=True)
class Usage:
    """What a scratch folder holds: bytes allocated, and entries (files, folders, links; the folder itself not)."""

    bytes: int
    files: int


@cache
def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


class ScratchFS:
    """`folder` as a tmpfs of at most `size` bytes and `files` entries, from construction until `close()`."""

    def __init__(self, folder: Path, *, size: int, files: int):
        self.folder = Path(folder).resolve()
        self.size, self.files = size, files
        self.peak = Usage(0, 0)
        self.userns = os.geteuid() != 0
        info = os.stat(self.folder)
        # The tmpfs's root stands in for the folder: same owner and mode. nr_inodes counts that root too.
        options = (f"size={size},nr_inodes={files + 1},mode={stat.S_IMODE(info.st_mode):o},"
                   f"uid={info.st_uid},gid={info.st_gid}")
        _libc()  # loaded here: between fork and exec, `enter` only makes system calls
        self._keeper = subprocess.Popen([sys.executable, "-I", "-S", str(_KEEPER), str(self.folder), options,
                                         "1" if self.userns else "0"],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self._namespaces: list[tuple[int, int]] = []
        self._root: int | None = None
        try:
            line = self._ready()
            if line != "ready":
                raise ScratchFSError(errno.EPERM, line.removeprefix("error: ") or "the keeper process ended")
            pid = self._keeper.pid
            joined = ((("user", CLONE_NEWUSER),) if self.userns else ()) + (("mnt", CLONE_NEWNS),)
            for kind, flag in joined:
                self._namespaces.append((os.open(f"/proc/{pid}/ns/{kind}", os.O_RDONLY | os.O_CLOEXEC), flag))
            # Held open, the tmpfs stays reachable (and the copy back possible) even if the keeper is killed.
            self._root = os.open(f"/proc/{pid}/root{self.folder}", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
            self.path = Path(f"/proc/self/fd/{self._root}")
            left_out = _copy_tree(self.folder, self.path, stop_when_full=True)
            if left_out:
                raise ScratchFSError(errno.EINVAL, f"the scratch folder's own files could not be copied into it: "
                                                   f"{left_out[0]}")
            _empty(self.folder)
        except BaseException:
            self._stop()
            raise

    def _ready(self) -> str:
        """The keeper's first line: `ready`, or `error: ...`."""
        assert self._keeper.stdout is not None
        if not select.select([self._keeper.stdout], [], [], _START_SECONDS)[0]:
            return f"error: the keeper process did not mount the file system within {_START_SECONDS:g} s"
        return self._keeper.stdout.readline().decode(errors="replace").strip()

    def enter(self) -> None:
        """Join the keeper's namespaces (in the sandbox's process, between fork and exec). The working directory is
        looked up again there, so one in the scratch folder is in the file system."""
        cwd = os.getcwd()
        for fd, flag in self._namespaces:
            if _libc().setns(fd, flag) != 0:
                raise OSError(ctypes.get_errno(), f"joining the scratch file system's namespace: "
                                                  f"{os.strerror(ctypes.get_errno())}")
        os.chdir(cwd)

    def exceeded(self, *, final: bool = False) -> bool:
        """Whether the job has filled its quota: the kernel refuses, or would refuse, its next page or file.
        (Measured at every call; `final`, the job has ended, changes nothing.)"""
        info = os.statvfs(self.path)
        usage = Usage((info.f_blocks - info.f_bfree) * info.f_frsize, info.f_files - info.f_ffree - 1)
        self.peak = Usage(max(self.peak.bytes, usage.bytes), max(self.peak.files, usage.files))
        return info.f_bavail == 0 or info.f_favail == 0

    def close(self) -> None:
        """Copy what the job left back onto the disk, then let the tmpfs go."""
        log.debug("%s: at most %d bytes and %d files in use", self.folder, self.peak.bytes, self.peak.files)
        try:
            left_out = _copy_tree(self.path, self.folder, stop_when_full=False)
        finally:
            self._stop()
        if left_out:
            log.warning("%s: %d entries the job left were not copied back, the first: %s", self.folder, len(left_out),
                        left_out[0])

    def _stop(self) -> None:
        for fd in [fd for fd, _ in self._namespaces] + ([self._root] if self._root is not None else []):
            os.close(fd)
        self._namespaces, self._root = [], None
        if self._keeper.stdin is not None:
            self._keeper.stdin.close()
        try:
            self._keeper.wait(timeout=_START_SECONDS)
        except subprocess.TimeoutExpired:
            self._keeper.kill()
            self._keeper.wait()
        if self._keeper.stdout is not None:
            self._keeper.stdout.close()


def _empty(folder: Path) -> None:
    for entry in os.scandir(folder):
        if entry.is_dir(follow_symlinks=False):
            shutil.rmtree(entry.path)
        else:
            os.unlink(entry.path)


def _copy_tree(src: Path, dst: Path, *, stop_when_full: bool) -> list[str]:
    """Copy the tree under `src` into the folder `dst` (which exists): folders, regular files (their data, with
    holes kept), links as links, FIFOs; never following a link. Owners are kept when running as root; the owner
    may always read and enter what was copied. `stop_when_full`: stop quietly when `dst` runs out of room (the
    job then starts over its quota). An entry `dst` cannot hold (a path longer than the system allows, a size past
    what its file system takes) is left out: returns why, one line per entry; running out of room raises."""
    as_root = os.geteuid() == 0
    linked: dict[int, str] = {}  # inode in src -> its first copy, for hard links
    modes: list[tuple[str, int]] = []  # folders get their mode once they are filled
    stack: list[tuple[str, str]] = [(str(src), str(dst))]
    left_out: list[str] = []
    try:
        while stack:
            here, there = stack.pop()
            try:
                if not as_root:  # a folder the job made unreadable is still ours to read
                    os.chmod(here, stat.S_IMODE(os.lstat(here).st_mode) | stat.S_IRWXU)
                with os.scandir(here) as entries:
                    listed = [(entry.name, entry.stat(follow_symlinks=False)) for entry in entries]
            except OSError as exc:
                _left_out(exc, here, left_out)
                continue
            for name, info in listed:
                source, target = os.path.join(here, name), os.path.join(there, name)
                try:
                    _copy_entry(source, target, info, linked, as_root)
                except OSError as exc:
                    _left_out(exc, source, left_out)
                    continue
                if stat.S_ISDIR(info.st_mode):
                    stack.append((source, target))
                    modes.append((target, info.st_mode))
    except OSError as exc:
        if not (stop_when_full and exc.errno in _NO_ROOM):
            raise
    for target, mode in reversed(modes):
        os.chmod(target, stat.S_IMODE(mode) & 0o1777 | stat.S_IRWXU)
    return left_out


def _left_out(exc: OSError, path: str, left_out: list[str]) -> None:
    if exc.errno in _NO_ROOM:
        raise exc
    left_out.append(f"{path[:200]}: {exc.strerror}")


def _copy_entry(source: str, target: str, info: os.stat_result, linked: dict[int, str], as_root: bool) -> None:
    mode = info.st_mode
    if stat.S_ISDIR(mode):
        os.mkdir(target, 0o700)
    elif stat.S_ISREG(mode):
        if info.st_nlink > 1 and info.st_ino in linked:
            os.link(linked[info.st_ino], target)
            return
        _copy_file(source, target, info, as_root)
        if info.st_nlink > 1:
            linked[info.st_ino] = target
    elif stat.S_ISLNK(mode):
        os.symlink(os.readlink(source), target)
    elif stat.S_ISFIFO(mode):
        os.mkfifo(target, 0o600)
    else:  # sockets and device nodes: nothing the host reads
        return
    if as_root:
        os.chown(target, info.st_uid, info.st_gid, follow_symlinks=False)
    if stat.S_ISREG(mode) or stat.S_ISFIFO(mode):
        os.chmod(target, stat.S_IMODE(mode) & 0o777 | stat.S_IRUSR | stat.S_IWUSR)


def _copy_file(source: str, target: str, info: os.stat_result, as_root: bool) -> None:
    """The data extents of `source` (SEEK_DATA / SEEK_HOLE), so what is copied is what was allocated."""
    if not as_root:  # a file the job made unreadable is still ours to read
        os.chmod(source, stat.S_IMODE(info.st_mode) | stat.S_IRUSR)
    src = os.open(source, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        dst = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            offset = 0
            while offset < info.st_size:
                try:
                    start = os.lseek(src, offset, os.SEEK_DATA)
                except OSError as exc:
                    if exc.errno != errno.ENXIO:  # ENXIO: nothing but a hole to the end
                        raise
                    break
                end = os.lseek(src, start, os.SEEK_HOLE)
                while start < end:
                    data = os.pread(src, min(_CHUNK, end - start), start)
                    if not data:
                        break
                    start += os.pwrite(dst, data, start)
                offset = end
            os.ftruncate(dst, info.st_size)
        finally:
            os.close(dst)
    finally:
        os.close(src)
