"""Namespaces inside the sandbox: how a process that is already sandboxed puts one child further apart.

The warm evaluator's zygote (grader.evaluate.zygote) runs in bubblewrap with torch imported and forks a child
per submission. Bubblewrap's namespaces are shared by everything the zygote forks, so each child makes its own:

- `enter_namespaces()` (in the forked child, which is single-threaded, as unshare(CLONE_NEWUSER) requires): a new
  user, mount, PID, network, IPC and UTS namespace. The process that runs the model is forked after it, so it is
  PID 1 of a namespace where neither the zygote nor any other submission has a PID: it cannot signal, trace or
  wait for them. A new network namespace has no interfaces and its own abstract sockets.
- `isolate()` (in that PID 1): every writable mount it inherited becomes read-only, and /tmp, /dev/shm and /proc
  are fresh, empty tmpfs mounts of its own. Nothing it writes can be read by another child, and the zygote's /proc
  entries (oom_score_adj, comm) are out of sight. Then it gives up what made that possible: it may create no user
  namespace (user.max_user_namespaces 0 in its own, as bwrap's --disable-userns does), it drops every capability
  from all its sets and the bounding set, and sets no_new_privs. Without capabilities it cannot unmount the covers,
  remount anything writable, mount a cgroup file system to lift its limits, or make a namespace in which it would
  have them again.

Linux only; the calls are made through libc with ctypes (the standard library has no unshare(2) or mount(2)).
"""

from __future__ import annotations

import ctypes
import os
from dataclasses import dataclass
from functools import cache

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_NOATIME = 1024
MS_NODIRATIME = 2048
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18
MS_RELATIME = 1 << 21
MS_STRICTATIME = 1 << 24

PR_SET_PDEATHSIG = 1
PR_GET_DUMPABLE = 3
PR_SET_DUMPABLE = 4
PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4
_CAPABILITY_VERSION_3 = 0x20080522

# The per-mount flags a bind remount must repeat: leaving out one the mount has would try to clear it, which a
# user namespace may not do to a mount it inherited (EPERM).
_FLAGS = {"nosuid": MS_NOSUID, "nodev": MS_NODEV, "noexec": MS_NOEXEC, "noatime": MS_NOATIME,
          "nodiratime": MS_NODIRATIME, "relatime": MS_RELATIME}
# Replaced by fresh mounts of the child's own, so not remounted read-only.
FRESH = ("/tmp", "/dev/shm", "/proc")


class NamespaceError(OSError):
    pass


@cache
def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


_libc()  # loaded at import, never first between fork and exec (dlopen there can deadlock a threaded parent)


def _check(result: int, what: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise NamespaceError(errno, f"{what}: {os.strerror(errno)}")


def prctl(option: int, value: int) -> None:
    _check(_libc().prctl(option, ctypes.c_ulong(value), 0, 0, 0), f"prctl({option})")


def enter_namespaces() -> None:
    """Unshare user, mount, PID, network, IPC and UTS namespaces, keeping this process's uid and gid.

    Only the next child forked lives in the new PID namespace (as its PID 1)."""
    uid, gid = os.getuid(), os.getgid()
    _check(_libc().unshare(CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS),
           "unshare")
    # A process that is not dumpable (the zygote makes itself so) has its /proc/self files owned by root of the
    # host, which only a sandbox running as host root could write: dumpable for these three writes only.
    dumpable = _libc().prctl(PR_GET_DUMPABLE, 0, 0, 0, 0)
    prctl(PR_SET_DUMPABLE, 1)
    try:
        for name, text in (("setgroups", "deny"), ("uid_map", f"{uid} {uid} 1"), ("gid_map", f"{gid} {gid} 1")):
            with open(f"/proc/self/{name}", "w") as f:
                f.write(text)
    finally:
        prctl(PR_SET_DUMPABLE, dumpable)


def private_mounts() -> None:
    """A mount namespace of this process's own whose mounts propagate nowhere: what it mounts, the host never sees."""
    _check(_libc().unshare(CLONE_NEWNS), "unshare(CLONE_NEWNS)")
    _check(_libc().mount(None, b"/", None, MS_REC | MS_PRIVATE, None), "making mounts private")


def mount(source: str, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    """mount(2), with the error naming what was mounted where."""
    _check(_libc().mount(source.encode(), target.encode(), fstype.encode() if fstype else None, flags,
                         data.encode() if data else None), f"mounting {source} on {target}")


@dataclass(frozen=True)
class Mount:
    point: str
    options: frozenset[str]

    @property
    def writable(self) -> bool:
        return "rw" in self.options

    @property
    def flags(self) -> int:
        flags = 0
        for name, flag in _FLAGS.items():
            if name in self.options:
                flags |= flag
        return flags


def mounts(mountinfo: str) -> list[Mount]:
    """The mounts of /proc/self/mountinfo's text, in order (mount point unescaped, per-mount options)."""
    found = []
    for line in mountinfo.splitlines():
        fields = line.split()
        if len(fields) < 6:
            continue
        point = fields[4].encode().decode("unicode_escape")
        found.append(Mount(point, frozenset(fields[5].split(","))))
    return found


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def to_make_read_only(found: list[Mount]) -> list[Mount]:
    """The writable mounts a child must remount read-only: all but those it replaces with fresh ones."""
    return [m for m in found if m.writable and not any(_under(m.point, fresh) for fresh in FRESH)]


def isolate(tmp_bytes: int) -> None:
    """In the new mount namespace: nothing writable that anyone else can see; /tmp, /dev/shm and /proc fresh; then
    no user namespaces, no capabilities, no new privileges. Call it before any untrusted code runs."""
    libc = _libc()
    with open("/proc/self/mountinfo") as f:
        found = mounts(f.read())
    with open("/proc/sys/kernel/cap_last_cap") as f:
        last_cap = int(f.read())
    _check(libc.mount(None, b"/", None, MS_REC | MS_PRIVATE, None), "making mounts private")
    for mount in to_make_read_only(found):
        _check(libc.mount(None, mount.point.encode(), None, MS_REMOUNT | MS_BIND | MS_RDONLY | mount.flags, None),
               f"remounting {mount.point} read-only")
    with open("/proc/sys/user/max_user_namespaces", "w") as f:  # this namespace's own limit: none below it
        f.write("0")
    size = f"size={tmp_bytes},mode=1777".encode()
    _check(libc.mount(b"tmpfs", b"/tmp", b"tmpfs", MS_NOSUID | MS_NODEV, size), "mounting /tmp")
    _check(libc.mount(b"tmpfs", b"/dev/shm", b"tmpfs", MS_NOSUID | MS_NODEV, size), "mounting /dev/shm")
    _check(libc.mount(b"tmpfs", b"/proc", b"tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_RDONLY, b"size=4k"),
           "covering /proc")
    drop_capabilities(last_cap)


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def drop_capabilities(last_cap: int) -> None:
    """No capability left in any set, none to gain back (bounding set empty, no_new_privs)."""
    libc = _libc()
    _check(libc.prctl(PR_CAP_AMBIENT, ctypes.c_ulong(PR_CAP_AMBIENT_CLEAR_ALL), 0, 0, 0),
           "clearing ambient capabilities")
    for cap in range(last_cap + 1):
        _check(libc.prctl(PR_CAPBSET_DROP, ctypes.c_ulong(cap), 0, 0, 0), f"dropping capability {cap}")
    header, data = _CapHeader(_CAPABILITY_VERSION_3, 0), (_CapData * 2)()
    _check(libc.capset(ctypes.byref(header), data), "dropping capabilities")
    prctl(PR_SET_NO_NEW_PRIVS, 1)
