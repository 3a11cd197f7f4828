"""Resource limits for one job: a cgroup per job (v2 or v1), or rlimits where no cgroup is writable.

Per-file size (RLIMIT_FSIZE) and core dumps are always rlimits. Memory and
process count come from a cgroup when one can be created: rlimits cannot do
either well (RLIMIT_AS counts virtual memory, which CUDA reserves by the
terabyte; RLIMIT_NPROC counts all processes of the user and does not bind
root at all, not even inside bwrap's user namespace).

A CPU quota (`cpus` cores: cgroup v2 `cpu.max`, v1 `cpu.cfs_quota_us`) is
optional: where the cpu controller is missing or not writable the job runs
without one (its thread pools are still sized by the sandbox's environment),
and `JobLimits.used` says which it got.

Job cgroups live under a `mnist-grader` parent at the top of each hierarchy
where this user may write there (root), else under the deepest folder above
the grader's own cgroup that is delegated to this user (a systemd user
manager's subtree, `systemd-run --user --scope grade ...`), one per job,
named after the grader's pid and a random suffix, and are removed (after
killing what is left in them) when the job closes. Where neither can be had,
or making the job's cgroup fails (a normal user on a machine where root made
the top-level parent), the job runs under rlimits and `JobLimits.used` says why:
the machine's set-up never fails a student.
"""

from __future__ import annotations

import errno
import os
import resource
import signal
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

PARENT = "mnist-grader"
_MOUNTS = Path("/proc/self/mounts")
_OWN = Path("/proc/self/cgroup")  # this process's cgroup in each hierarchy
_SETTLE_SECONDS = 5.0  # how long killing and removing a job's cgroup may take
_CPU_PERIOD_US = 100_000  # the scheduler's default period; the quota is cpus of them
_RLIMIT_MEMORY_SIGNS = ("MemoryError", "Cannot allocate memory", "std::bad_alloc", "out of memory")


@dataclass(frozen=True)
class Hierarchy:
    """Where job cgroups go: one parent per controller (the same folder twice on v2)."""

    version: int
    memory: Path
    pids: Path

    @property
    def parents(self) -> tuple[Path, ...]:
        return tuple(dict.fromkeys((self.memory, self.pids)))


@dataclass(frozen=True)
class Detected:
    hierarchy: Hierarchy | None
    reason: str  # why there is no hierarchy; empty when there is one


@dataclass(frozen=True)
class CpuController:
    """Where job cgroups for the CPU quota go (on v2 the same folder as the memory and pids ones)."""

    version: int
    parent: Path


@cache
def detect_cpu() -> CpuController | None:
    """The writable cpu controller, preferring v2's; None where there is none (the quota is optional)."""
    try:
        mounts = list(_cgroup_mounts())
    except OSError:
        return None
    for fstype, mountpoint, options in mounts:
        root = Path(mountpoint)
        try:
            if fstype == "cgroup2" and "cpu" in (root / "cgroup.controllers").read_text().split():
                return CpuController(2, _job_parent(root, _own_cgroup(None), {"cpu"}))
            if fstype == "cgroup" and "cpu" in options:
                return CpuController(1, _job_parent(root, _own_cgroup("cpu"), set()))
        except OSError:  # e.g. +cpu refused (a v2 root with real-time threads), not writable: try the next mount
            continue
    return None


@cache
def detect() -> Detected:
    """The writable cgroup hierarchy with memory and pids controllers, preferring v2."""
    mounts = list(_cgroup_mounts())
    reasons = []
    for finder in (_find_v2, _find_v1):
        try:
            hierarchy = finder(mounts)
        except OSError as e:
            reasons.append(f"{finder.__doc__}: {e}")
            continue
        if hierarchy is not None:
            return Detected(hierarchy, "")
        reasons.append(f"{finder.__doc__}: not mounted with memory and pids controllers")
    return Detected(None, "; ".join(reasons))


class JobLimits:
    """The limits of one running job; a context manager that cleans up its cgroup."""

    def __init__(self, *, memory_bytes: int, max_processes: int, max_file_bytes: int, cpus: int | None = None,
                 detected: Detected | None = None, cpu: CpuController | None = None):
        """`cpus`: a CPU quota of that many cores where a cpu controller is writable (None: no quota);
        `detected` / `cpu`: the hierarchies to use (default: this host's)."""
        detected = detected or detect()
        self._rlimits = [(resource.RLIMIT_FSIZE, max_file_bytes), (resource.RLIMIT_CORE, 0)]
        self._cgroups: tuple[Path, ...] = ()
        self.hierarchy = detected.hierarchy
        if self.hierarchy is not None:
            try:
                self._cgroups = _create_job(self.hierarchy, memory_bytes, max_processes)
                self.used = f"cgroup-v{self.hierarchy.version}"
            except OSError as e:  # e.g. a parent another user made: this job runs under rlimits instead
                where = " and ".join(str(p) for p in self.hierarchy.parents)
                self._rlimits_instead(f"the job's cgroup could not be made under {where}: {e}", memory_bytes)
        else:
            self._rlimits_instead(f"no writable cgroup: {detected.reason}", memory_bytes)
        if cpus is not None:
            self.used += self._cpu_quota(cpus, cpu or detect_cpu())
        # Formatted here: between fork and exec the child should only make system calls.
        self._procs = [str(g / "cgroup.procs") for g in self._cgroups]

    def _rlimits_instead(self, why: str, memory_bytes: int) -> None:
        self.hierarchy = None
        self._rlimits.append((resource.RLIMIT_AS, memory_bytes))
        self.used = (f"rlimit ({why}): memory by RLIMIT_AS, which counts virtual memory and is not suitable for CUDA; "
                     "no process limit (RLIMIT_NPROC counts all the user's processes, and none of root's); for cgroup "
                     "limits run the grader as root or in a cgroup delegated to this user "
                     "(systemd-run --user --scope grade ...)")

    def _cpu_quota(self, cpus: int, controller: CpuController | None) -> str:
        """Put the job under a quota of `cpus` cores; what `used` says about it."""
        if controller is None:
            return " (no cpu quota: no writable cpu cgroup controller)"
        _sweep_stale((controller.parent,))
        name = self._cgroups[0].name if self._cgroups else f"job-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        group = next((g for g in self._cgroups if g.parent == controller.parent), controller.parent / name)
        made = group not in self._cgroups
        try:
            if made:
                group.mkdir()
            if controller.version == 2:
                (group / "cpu.max").write_text(f"{cpus * _CPU_PERIOD_US} {_CPU_PERIOD_US}")
            else:
                (group / "cpu.cfs_period_us").write_text(str(_CPU_PERIOD_US))
                (group / "cpu.cfs_quota_us").write_text(str(cpus * _CPU_PERIOD_US))
        except OSError as e:
            if made and group.exists():
                group.rmdir()
            return f" (no cpu quota: {e})"
        if made:
            self._cgroups += (group,)
        shown = "core" if cpus == 1 else "cores"
        return (f" (cpu quota {cpus} {shown})" if self.hierarchy
                else f"; cgroup-v{controller.version} cpu quota {cpus} {shown}")

    def __enter__(self) -> JobLimits:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def preexec(self) -> None:
        """Runs in the child between fork and exec, so everything it starts is inside the limits."""
        for path in self._procs:
            fd = os.open(path, os.O_WRONLY)
            try:
                os.write(fd, b"0")  # "0" is the writing process, on v1 and v2
            finally:
                os.close(fd)
        for which, value in self._rlimits:
            resource.setrlimit(which, (value, value))

    def adopt(self, pid: int) -> None:
        """Move a process that is already running (and what it starts from now on) into the job's cgroup.

        Under rlimits there is nothing to move: the process must set its own (it inherited none of the job's)."""
        for path in self._procs:
            fd = os.open(path, os.O_WRONLY)
            try:
                os.write(fd, str(pid).encode())
            finally:
                os.close(fd)

    def kill_all(self) -> None:
        """Kill every process still in the job's cgroup (nothing to do under rlimits)."""
        for group in self._cgroups:
            kill_file = group / "cgroup.kill"
            if kill_file.exists():
                kill_file.write_text("1")
        deadline = time.monotonic() + _SETTLE_SECONDS
        while any(_members(g) for g in self._cgroups) and time.monotonic() < deadline:
            for group in self._cgroups:
                for pid in _members(group):
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
            time.sleep(0.01)

    def memory_exceeded(self, stderr: str) -> bool:
        """Whether the job hit its memory limit; under rlimits only the error text can tell."""
        if self.hierarchy is None:
            return any(sign in stderr for sign in _RLIMIT_MEMORY_SIGNS)
        group = self._cgroups[0]
        if self.hierarchy.version == 2:
            return _keyed(group / "memory.events").get("oom_kill", 0) > 0
        oom = _keyed(group / "memory.oom_control")
        if "oom_kill" in oom:
            return oom["oom_kill"] > 0
        return int((group / "memory.failcnt").read_text()) > 0  # kernels before 4.13

    def close(self) -> None:
        self.kill_all()
        for group in self._cgroups:
            _remove(group)
        self._cgroups = ()


@cache
def _sweep_stale(parents: tuple[Path, ...]) -> int:
    """Remove the empty job cgroups of grader processes that are gone (killed before they could clean up: a Ray
    worker, a SIGKILLed run). Once per process; returns how many were removed."""
    removed = 0
    for parent in parents:
        try:
            names = os.listdir(parent)
        except OSError:
            continue
        for name in names:
            parts = name.split("-")
            if len(parts) != 3 or parts[0] != "job" or not parts[1].isdigit() or int(parts[1]) == os.getpid():
                continue
            if Path(f"/proc/{parts[1]}").exists():
                continue
            try:
                (parent / name).rmdir()  # refused while anything is still in it
                removed += 1
            except OSError:
                pass
    return removed


def _create_job(hierarchy: Hierarchy, memory_bytes: int, max_processes: int) -> tuple[Path, ...]:
    _sweep_stale(hierarchy.parents)
    name = f"job-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    groups = tuple(parent / name for parent in hierarchy.parents)
    try:
        for group in groups:
            group.mkdir()
        if hierarchy.version == 2:
            (groups[0] / "memory.max").write_text(str(memory_bytes))
            _write_if_present(groups[0] / "memory.swap.max", "0")  # over the limit means killed, not thrashing
        else:
            (hierarchy.memory / name / "memory.limit_in_bytes").write_text(str(memory_bytes))
            _write_if_present(hierarchy.memory / name / "memory.memsw.limit_in_bytes", str(memory_bytes))
        (hierarchy.pids / name / "pids.max").write_text(str(max_processes))
    except OSError:
        for group in groups:
            if group.exists():
                group.rmdir()
        raise
    return groups


def _find_v2(mounts: list[tuple[str, str, set[str]]]) -> Hierarchy | None:
    """cgroup v2"""
    for fstype, mountpoint, _ in mounts:
        root = Path(mountpoint)
        if fstype != "cgroup2" or not {"memory", "pids"} <= set((root / "cgroup.controllers").read_text().split()):
            continue
        parent = _job_parent(root, _own_cgroup(None), {"memory", "pids"})
        return Hierarchy(2, parent, parent)
    return None


def _find_v1(mounts: list[tuple[str, str, set[str]]]) -> Hierarchy | None:
    """cgroup v1"""
    found = {}
    for fstype, mountpoint, options in mounts:
        for controller in ("memory", "pids"):
            if fstype == "cgroup" and controller in options:
                found[controller] = Path(mountpoint)
    if set(found) != {"memory", "pids"}:
        return None
    parents = {c: _job_parent(mount, _own_cgroup(c), set()) for c, mount in found.items()}
    return Hierarchy(1, parents["memory"], parents["pids"])


def _job_parent(root: Path, own: str | None, controllers: set[str]) -> Path:
    """The folder job cgroups go under in the hierarchy mounted at `root`: `mnist-grader` at its top where this user
    may write there, else in the deepest folder above `own` (this process's cgroup, relative to `root`) delegated to
    this user: writable, with a writable cgroup.procs (moving a job there from here needs it). On v2 `controllers`
    are enabled on the levels above a job's cgroup. PermissionError, saying where it looked, when there is none."""
    above = [root / a.relative_to("/") for a in Path(own).parents if a != Path("/")] if own else []
    problems = []
    for level in (root, *above):
        parent = level / PARENT
        try:
            if level != root and not (os.access(level, os.W_OK | os.X_OK)
                                      and os.access(level / "cgroup.procs", os.W_OK)):
                continue
            parent.mkdir(exist_ok=True)
            if not os.access(parent, os.W_OK | os.X_OK):  # made by another user (root, on an earlier run)
                raise PermissionError(errno.EACCES, "made by another user, not writable by this one")
            for step in (level, parent) if controllers else ():
                enabled = set((step / "cgroup.subtree_control").read_text().split())
                if not controllers <= enabled:
                    (step / "cgroup.subtree_control").write_text(" ".join(f"+{c}" for c in sorted(controllers)))
            return parent
        except OSError as e:
            problems.append(f"{parent}: {e.strerror or e}")
    raise PermissionError(errno.EACCES, "no cgroup folder this user may write: " + "; ".join(problems)
                          + (" (no delegated folder above this process's cgroup)" if not above else ""))


def _own_cgroup(controller: str | None) -> str | None:
    """This process's cgroup path in the v2 hierarchy (None) or in the v1 hierarchy of `controller`."""
    try:
        lines = _OWN.read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, names, path = line.split(":", 2)
        if (controller is None and names == "") or (controller is not None and controller in names.split(",")):
            return path
    return None


def _cgroup_mounts() -> Iterator[tuple[str, str, set[str]]]:
    for line in _MOUNTS.read_text().splitlines():
        _, mountpoint, fstype, options, *_ = line.split()
        if fstype in ("cgroup", "cgroup2"):
            # /proc/mounts escapes spaces and friends as octal.
            yield fstype, mountpoint.encode().decode("unicode_escape"), set(options.split(","))


def _members(group: Path) -> list[int]:
    try:
        return [int(pid) for pid in (group / "cgroup.procs").read_text().split()]
    except FileNotFoundError:
        return []


def _remove(group: Path) -> None:
    # A killed task leaves its cgroup a moment after the signal.
    deadline = time.monotonic() + _SETTLE_SECONDS
    while True:
        try:
            group.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def _keyed(path: Path) -> dict[str, int]:
    pairs = (line.split() for line in path.read_text().splitlines())
    return {key: int(value) for key, value in pairs}


def _write_if_present(path: Path, value: str) -> None:
    if path.exists():
        path.write_text(value)
