"""Run one command in the sandbox: start it inside its limits, watch the clock, keep bounded output, kill the
whole tree."""

from __future__ import annotations

import logging
import os
import selectors
import signal
import subprocess
import time
import warnings
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from grader.errors import GraderError
from grader.sandbox.bwrap import HostLayout, SandboxSpec, bwrap_available, inside_env, sandbox_command
from grader.sandbox.disk import Quota, described, disk_quota
from grader.sandbox.identity import Launch
from grader.sandbox.limits import JobLimits

log = logging.getLogger(__name__)

_READ_CHUNK = 1 << 16
_POLL_SECONDS = 0.25
# After a kill, output already in the pipes is still worth reading; a process
# that escaped the kill and holds a pipe open must not hang the grader.
_DRAIN_SECONDS = 2.0


@dataclass(frozen=True)
class SandboxResult:
    returncode: int | None  # None when we killed it on the clock; 128+N when signal N killed the command inside bwrap
    timed_out: bool
    memory_exceeded: bool
    disk_exceeded: bool  # the scratch filled its quota (spec.disk_bytes or spec.disk_files) and the job was stopped
    output_truncated: bool
    stdout: str  # head and tail, with a marker where the middle was dropped
    stderr: str
    seconds: float
    # "cgroup-v1", "cgroup-v2", or "rlimit (...why, and what that cannot limit)", then the cpu quota; then "; disk: ..."
    # (a file system of its own, or watched, not enforced, and what the watch cannot see); then the sandbox's host uid
    limits_used: str


def run_sandboxed(argv: Sequence[str], spec: SandboxSpec, *, sandbox: bool = True) -> SandboxResult:
    """Run `argv` in the scratch of `spec`, in bubblewrap unless `sandbox=False` (trusted code only)."""
    layout = HostLayout.detect()
    if sandbox:
        bwrap = bwrap_available()
        if bwrap is None:
            raise GraderError(
                "bubblewrap (bwrap) is not installed; it is what keeps student code away from this machine",
                fix="install it (apt-get install -y bubblewrap), or pass --no-sandbox if every submission is trusted",
            )
        command, launch = sandbox_command(argv, spec, bwrap=bwrap, layout=layout)
    else:
        message = "running without the sandbox: the code can read, write and reach everything this user can"
        log.warning(message)
        warnings.warn(message, stacklevel=2)
        command, launch = list(argv), Launch(None)
    spec.scratch.mkdir(parents=True, exist_ok=True)
    # The quota's file system goes when the block ends, after the whole tree is dead: what the job left is back in
    # the scratch folder on disk before the caller reads it.
    with JobLimits(memory_bytes=spec.memory_bytes, max_processes=spec.max_processes, max_file_bytes=spec.max_file_bytes,
                   cpus=spec.cpus) as job, \
            disk_quota(spec.scratch, size=spec.disk_bytes, files=spec.disk_files) as disk:

        def preexec() -> None:
            disk.enter()  # first: joining its namespaces may need privileges that the job's set-up gives up
            launch.after(job.preexec)()

        start = time.monotonic()
        proc = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=spec.scratch,
            env=inside_env(spec, sandbox=sandbox, layout=layout),
            preexec_fn=preexec,
            start_new_session=True,  # its own process group, to kill in one call
        )
        stdout, stderr = _Capture(spec.max_output_bytes // 2), _Capture(spec.max_output_bytes // 2)
        timed_out, disk_exceeded = _watch(proc, job, start + spec.wall_seconds, stdout, stderr, disk)
        seconds = time.monotonic() - start
        err_text = stderr.text()
        return SandboxResult(
            returncode=None if timed_out or disk_exceeded else proc.returncode,
            timed_out=timed_out,
            memory_exceeded=job.memory_exceeded(err_text),
            disk_exceeded=disk_exceeded,
            output_truncated=stdout.dropped > 0 or stderr.dropped > 0,
            stdout=stdout.text(),
            stderr=err_text,
            seconds=seconds,
            limits_used=f"{job.used}; {described(disk)}; {launch.described}",
        )


def _watch(proc: subprocess.Popen[bytes], job: JobLimits, deadline: float, stdout: _Capture, stderr: _Capture,
           disk: Quota) -> tuple[bool, bool]:
    """Drain both pipes until they close; kill everything at the deadline or over the disk quota.

    Returns (timed out, over the disk quota)."""
    assert proc.stdout is not None and proc.stderr is not None
    timed_out = exited = disk_exceeded = False
    give_up = float("inf")
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ, stdout)
        sel.register(proc.stderr, selectors.EVENT_READ, stderr)
        while sel.get_map() and time.monotonic() < give_up:
            if not timed_out and not disk_exceeded and time.monotonic() >= deadline:
                timed_out = True
                _kill_tree(proc, job)
                give_up = time.monotonic() + _DRAIN_SECONDS
            elif not timed_out and not disk_exceeded and not exited and disk.exceeded():
                disk_exceeded = True
                _kill_tree(proc, job)
                give_up = time.monotonic() + _DRAIN_SECONDS
            elif not exited and proc.poll() is not None:
                # Whatever outlives the command (only possible without bwrap)
                # would keep the pipes open: it goes too.
                exited = True
                _kill_tree(proc, job)
            timeout = min(_POLL_SECONDS, max(0.0, min(deadline, give_up) - time.monotonic()))
            for key, _ in sel.select(timeout):
                data = os.read(key.fd, _READ_CHUNK)
                if data:
                    key.data.feed(data)
                else:
                    sel.unregister(key.fileobj)
    proc.stdout.close()
    proc.stderr.close()
    try:
        proc.wait(timeout=_DRAIN_SECONDS)
    except subprocess.TimeoutExpired:
        _kill_tree(proc, job)
        proc.wait()
    if not timed_out and not disk_exceeded:  # what it left counts too, however soon after the last look it ended
        disk_exceeded = disk.exceeded(final=True)
    return timed_out, disk_exceeded


def _kill_tree(proc: subprocess.Popen[bytes], job: JobLimits) -> None:
    # Killing bwrap ends its pid namespace (--die-with-parent takes down the
    # namespace's init, and with it every process inside); the cgroup catches
    # what got out of the process group in trusted mode.
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    job.kill_all()


class _Capture:
    """The first and last bytes of a stream, within a fixed budget; the middle is counted and dropped."""

    def __init__(self, budget: int):
        self._head_budget = budget // 2
        self._tail_budget = budget - self._head_budget
        self._head = bytearray()
        self._tail: deque[bytes] = deque()
        self._tail_len = 0
        self.dropped = 0

    def feed(self, data: bytes) -> None:
        room = self._head_budget - len(self._head)
        if room > 0:
            self._head += data[:room]
            data = data[room:]
        if not data:
            return
        self._tail.append(data)
        self._tail_len += len(data)
        while self._tail_len > self._tail_budget:
            excess = self._tail_len - self._tail_budget
            first = self._tail[0]
            if len(first) <= excess:
                self._tail.popleft()
                cut = len(first)
            else:
                self._tail[0] = first[excess:]
                cut = excess
            self._tail_len -= cut
            self.dropped += cut

    def text(self) -> str:
        tail = b"".join(self._tail)
        marker = f"\n[... {self.dropped} bytes of output dropped ...]\n".encode() if self.dropped else b""
        return bytes(self._head + marker + tail).decode("utf-8", "replace")
