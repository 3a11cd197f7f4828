"""Host side of the warm evaluator: one zygote per class, one isolated child per submission.

A fresh sandbox per submission pays for `import torch` and torch.export's first load (about 3 s on a 2-core CPU)
before it predicts anything. The zygote (grader.evaluate.zygote) pays that once: it runs in bubblewrap like any
clean evaluation, and forks one child per submission, which enters namespaces of its own before it reads the model
(see grader.sandbox.nested). Here, per submission:

1. open the exported model read-only and make the pipes the child writes to and its control socket;
2. send the job to the zygote with those descriptors (SCM_RIGHTS): the child sees no file of anyone else's;
3. when the child says "ready", read its PID from the socket's credentials (SO_PASSCRED gives it in this PID
   namespace) and move it into a cgroup of its own (memory, processes, CPU quota), then let it go;
4. read the result under the evaluation's clock; past it, kill everything in the job's cgroup (the child's
   process dies with its trusted parent where there is no cgroup).

The zygote is started by a thread of its own that lives as long as it does: bubblewrap's --die-with-parent follows
the thread that started it, and a grading pool's threads come and go.
"""

from __future__ import annotations

import atexit
import json
import os
import selectors
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np

from grader.errors import GraderError
from grader.evaluate.eval_jobs import EvalJob, WarmJob
from grader.sandbox import SandboxSpec
from grader.sandbox.bwrap import HostLayout, bwrap_available, inside_env, sandbox_command
from grader.sandbox.limits import JobLimits
from grader.sandbox.readback import Folder, Kind, labels_from_npy
from grader.settings import RunLimits

DATA_INSIDE = Path("/opt/grader-data")
_START_SECONDS = 120.0  # importing torch and warming up, on a loaded machine
_READY_SECONDS = 30.0  # from sending a job to the child's "ready"
_MAX_RESULT_BYTES = Kind.RESULT.cap + 2 * Kind.PREDICTIONS.cap  # the header's record and two label arrays
_MAX_LOG_BYTES = 64 << 10
_CRED = struct.Struct("3i")  # struct ucred: pid, uid, gid
_LIMITS = RunLimits()  # the default limits (frozen: one shared instance)


@dataclass
class WarmResult:
    """What one child left: its header (EvalRecord's fields, or an error), its arrays, its output's tail."""

    header: Optional[dict]
    arrays: list[np.ndarray] = field(default_factory=list)
    log: str = ""
    exit: Optional[int] = None
    timed_out: bool = False
    memory_exceeded: bool = False
    problem: Optional[str] = None  # why no header could be read
    started: bool = True  # False: nothing was measured (the zygote died or did not answer, or the isolation failed)
    setup_failed: bool = False  # the child could not be isolated: the grader's set-up, measured the cold way


class WarmEvaluator:
    """A zygote with torch imported, the test images loaded and the evaluation code warm; `evaluate()` is
    thread-safe, and each call's child is isolated from the zygote and from every other call's."""

    def __init__(self, images: Path, unseen: Optional[Path] = None, *, limits: RunLimits = _LIMITS):
        self.images, self.unseen, self.limits = Path(images).resolve(), unseen, limits
        self._lock = threading.Lock()  # the zygote's life: start, stop, users
        self._send = threading.Lock()  # one message at a time on its socket
        self._proc: Optional[subprocess.Popen] = None
        self._sock: Optional[socket.socket] = None
        self._scratch: Optional[tempfile.TemporaryDirectory] = None
        self._log: Optional[Path] = None
        self._job: Optional[JobLimits] = None
        self._users = 0  # evaluations in flight
        self._retired = False  # close when the last one ends (evicted from the shared registry)
        self.starts = 0  # how many zygotes this evaluator has started (1 unless one died)
        self.failed: Optional[str] = None  # why warm evaluation is not possible here: not tried again

    # --- the zygote ---------------------------------------------------------------------------------------------

    def _start(self) -> None:
        bwrap = bwrap_available()
        if bwrap is None:
            raise GraderError("bubblewrap (bwrap) is not installed; it is what keeps student code away from this "
                              "machine", fix="install it (apt-get install -y bubblewrap)")
        self._scratch = tempfile.TemporaryDirectory(prefix="mnist-grader-zygote-")
        scratch = Path(self._scratch.name) / "inside"  # what the zygote sees; the log and the rehearsal stay out
        scratch.mkdir()
        binds = [(self.images, DATA_INSIDE / "test_images.npy")]
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        argv = [sys.executable, "-P", "-m", "grader.evaluate.zygote", str(theirs.fileno()),
                str(DATA_INSIDE / "test_images.npy")]
        if self.unseen is not None:
            binds.append((Path(self.unseen).resolve(), DATA_INSIDE / "unseen_images.npy"))
            argv.append(str(DATA_INSIDE / "unseen_images.npy"))
        spec = SandboxSpec.for_run(self.limits, scratch=scratch, ro_binds=tuple(binds), gpu=False,
                                   nested_namespaces=True,
                                   env={"PYTHONDONTWRITEBYTECODE": "1", "OMP_NUM_THREADS": "1"})
        layout = HostLayout.detect()
        command, launch = sandbox_command(argv, spec, bwrap=bwrap, layout=layout)
        self._job = job = JobLimits(memory_bytes=self.limits.memory_bytes, max_processes=self.limits.max_processes,
                                    max_file_bytes=self.limits.max_file_bytes)
        self._log = log_file = Path(self._scratch.name) / "zygote.log"
        started = threading.Event()
        failure: list[BaseException] = []

        def keep() -> None:
            try:
                with open(log_file, "wb") as log:
                    self._proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                                  cwd=scratch, env=inside_env(spec, sandbox=True, layout=layout),
                                                  preexec_fn=launch.after(job.preexec),
                                                  pass_fds=(theirs.fileno(),), start_new_session=True)
            except BaseException as exc:  # noqa: BLE001 - handed to the thread that waits for the start
                failure.append(exc)
                started.set()
                return
            started.set()
            self._proc.wait()

        threading.Thread(target=keep, name="warm-evaluator-zygote", daemon=True).start()
        started.wait()
        theirs.close()
        self._sock = ours
        if failure:
            self._stop_zygote()
            raise failure[0]
        ours.settimeout(_START_SECONDS)
        try:
            hello = ours.recv(16)
        except OSError:
            hello = b""
        ours.settimeout(None)
        if hello != b"warm":
            with Folder(log_file.parent) as folder:
                tail = folder.tail(log_file.name)[-2000:]
            self._stop_zygote()
            raise RuntimeError(f"the warm evaluator did not start: {tail}")
        self.starts += 1
        self._rehearse()

    def _rehearse(self) -> None:
        """One child through the whole isolation before any submission: a host where it cannot work (user
        namespaces refused, a mount that cannot be made read-only) is found here, and measured the cold way."""
        assert self._scratch is not None, "_start made the scratch folder before the rehearsal"
        script = Path(self._scratch.name) / "rehearsal.py"
        script.write_text("print('isolated')\n")
        result = self._run(_job(self.limits, 1, script=[]), script, self.limits)
        if not result.started or result.header != {"script_exit": 0, "sizes": []} or "isolated" not in result.log:
            self._stop_zygote()
            raise RuntimeError(f"the warm evaluator's children cannot be isolated here: "
                               f"{result.problem or result.log[-500:] or result.header}")

    def _alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None and self._sock is not None

    def _stop_zygote(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        if self._proc is not None:
            try:
                os.killpg(self._proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self._proc = None
        if self._job is not None:
            self._job.close()
            self._job = None
        if self._scratch is not None:
            self._scratch.cleanup()  # the log and the rehearsal with it
            self._scratch = None

    def close(self) -> None:
        with self._lock:
            self._stop_zygote()

    def retire(self) -> None:
        """Close now if idle, else when the evaluations in flight end (they are not cut short)."""
        with self._lock:
            self._retired = True
            if self._users == 0:
                self._stop_zygote()

    def zygote_pid(self) -> Optional[int]:
        return self._proc.pid if self._proc is not None else None

    def _ensure_started(self) -> None:
        """The zygote, started unless it runs (the caller holds the lock); a start that failed is not tried again."""
        if self.failed:
            raise RuntimeError(self.failed)
        if not self._alive():
            self._stop_zygote()
            try:
                self._start()
            except (RuntimeError, OSError) as exc:
                self.failed = str(exc)
                raise

    def prestart(self) -> None:
        """Start the zygote now, in the background, so that the first `evaluate()` finds it warm: a single check
        overlaps its `import torch` with the notebook's run. `evaluate()` waits for a start in progress, and meets
        (and reports) a start that failed."""
        def start() -> None:
            with self._lock:
                try:
                    self._ensure_started()
                except (RuntimeError, OSError, GraderError):
                    pass  # kept in self.failed for evaluate(), which then measures in a fresh sandbox

        threading.Thread(target=start, name="warm-evaluator-prestart", daemon=True).start()

    # --- one submission -----------------------------------------------------------------------------------------

    def evaluate(self, job: EvalJob, model_file: Path, *, limits: RunLimits, cpus: Optional[int] = None) -> WarmResult:
        """Measure one exported model (`job`'s files are given as descriptors, not paths)."""
        return self._child(model_file, limits, cpus, measure=job)

    def run_script(self, script: Path, argv: list[str], *, limits: RunLimits) -> WarmResult:
        """Run a Python file where a model would be measured, with the same isolation and limits (for the tests that
        show what a child can reach); its exit code is in `header["script_exit"]`."""
        return self._child(script, limits, None, script=list(argv))

    def _child(self, model_file: Path, limits: RunLimits, cpus: Optional[int], **task: object) -> WarmResult:
        """One child of the zygote for `task` (WarmJob's measure or script), given `model_file` as a descriptor."""
        cpus = cpus or limits.cpus or os.cpu_count() or 1
        job = _job(limits, cpus, **task)
        with self._lock:
            self._ensure_started()
            self._users += 1
        try:
            result = self._run(job, model_file, limits)
        finally:
            with self._lock:
                self._users -= 1
                if self._retired and self._users == 0:
                    self._stop_zygote()
        if result.setup_failed:  # the grader's isolation, not the submission: every later one would fail alike
            with self._lock:
                self.failed = result.problem
        return result

    def _run(self, job: WarmJob, model_file: Path, limits: RunLimits) -> WarmResult:
        sock = self._sock
        if sock is None:
            return WarmResult(None, problem="the warm evaluator was closed", started=False)
        with JobLimits(memory_bytes=limits.memory_bytes, max_processes=limits.max_processes,
                       max_file_bytes=limits.max_file_bytes, cpus=job.cpus) as cgroup:
            if cgroup.hierarchy is None:  # no cgroup on this host: the memory limit is the address space
                job = job.model_copy(update={"rlimit_memory": limits.memory_bytes})
            result_r, result_w = os.pipe()
            log_r, log_w = os.pipe()
            control, control_child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            control.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
            with Folder(model_file.parent) as folder:  # our copy (grader.evaluate.job), checked all the same
                model_fd = folder.descriptor(model_file.name, Kind.MODEL)
            try:
                with self._send:
                    socket.send_fds(sock, [job.model_dump_json().encode()],
                                    [model_fd, result_w, log_w, control_child.fileno()])
            except OSError as exc:
                for fd in (result_r, log_r):
                    os.close(fd)
                control.close()
                return WarmResult(None, problem=f"the warm evaluator's zygote is gone ({exc})", started=False)
            finally:
                for fd in (model_fd, result_w, log_w):
                    os.close(fd)
                control_child.close()
            with control, os.fdopen(result_r, "rb", buffering=0) as result, os.fdopen(log_r, "rb", buffering=0) as log:
                pid = _ready_pid(control)
                if pid is None:
                    return WarmResult(None, problem="the evaluation process did not start (the warm evaluator's "
                                                    f"zygote {'died' if not self._alive() else 'did not answer'})",
                                      started=False)
                try:
                    pidfd = os.pidfd_open(pid)  # signals reach this process, never one that later reuses its PID
                except OSError:
                    return WarmResult(None, problem="the evaluation process ended before it started", started=False)
                try:
                    cgroup.adopt(pid)
                    control.send(b"go")
                    return _collect(result, log, control, pidfd, cgroup, time.monotonic() + limits.eval_seconds)
                finally:
                    os.close(pidfd)


def _job(limits: RunLimits, cpus: int, **task: object) -> WarmJob:
    """The message for one child: its task (WarmJob's measure or script) and its limits."""
    return WarmJob(**task, cpus=cpus, file_bytes=limits.max_file_bytes,
                   cpu_seconds=int(limits.eval_seconds * cpus) + 10)


def _ready_pid(control: socket.socket) -> Optional[int]:
    """The PID of the child that said "ready", in this PID namespace (from SCM_CREDENTIALS)."""
    control.settimeout(_READY_SECONDS)
    try:
        message, ancillary, _, _ = control.recvmsg(16, socket.CMSG_SPACE(_CRED.size))
    except OSError:
        return None
    finally:
        control.settimeout(None)
    if message != b"ready":
        return None
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
            return _CRED.unpack(data[:_CRED.size])[0]
    return None


def _collect(result, log, control: socket.socket, pidfd: int, cgroup: JobLimits, deadline: float) -> WarmResult:
    """Read the child's result and output until both end and its parent reports; kill it all at the deadline."""
    data, output = bytearray(), bytearray()
    report: dict[str, Any] = {}
    timed_out = False
    with selectors.DefaultSelector() as sel:
        sel.register(result, selectors.EVENT_READ, "result")
        sel.register(log, selectors.EVENT_READ, "log")
        sel.register(control, selectors.EVENT_READ, "control")
        while sel.get_map():
            left = deadline - time.monotonic()
            if left <= 0:
                timed_out = True
                _kill(pidfd, cgroup)
                break
            for key, _ in sel.select(min(left, 1.0)):
                if key.data == "control":  # written by the trusted parent only
                    message = control.recv(8192)
                    try:
                        report = json.loads(message) if message else {}
                    except ValueError:
                        report = {}
                    sel.unregister(control)
                    continue
                chunk = os.read(key.fd, 1 << 16)
                if not chunk:
                    sel.unregister(key.fileobj)
                elif key.data == "result":
                    if len(data) + len(chunk) > _MAX_RESULT_BYTES:
                        _kill(pidfd, cgroup)
                        return WarmResult(None, problem="the evaluation wrote more than the predictions can be")
                    data += chunk
                else:
                    output = (output + chunk)[-_MAX_LOG_BYTES:]
    text = output.decode("utf-8", "replace")
    setup = report.get("setup")
    if not timed_out and setup != "ok":  # the isolation failed before the model was read: nothing was measured
        return WarmResult(None, log=text, problem=f"the warm evaluator could not isolate the child: {setup}",
                          started=False, setup_failed=True)
    header, arrays, problem = _parse(bytes(data))
    return WarmResult(header, arrays, text, report.get("exit"), timed_out, cgroup.memory_exceeded(text), problem)


def _kill(pidfd: int, cgroup: JobLimits) -> None:
    try:
        signal.pidfd_send_signal(pidfd, signal.SIGKILL)  # its child (PID 1 of the namespace) follows by PDEATHSIG
    except ProcessLookupError:
        pass
    cgroup.kill_all()


def _parse(data: bytes) -> tuple[Optional[dict], list[np.ndarray], Optional[str]]:
    """The child's result: untrusted bytes, so anything malformed is a problem to report, never an exception."""
    if len(data) < 8:
        return None, [], "the evaluation process ended without a result"
    (size,) = struct.unpack("<Q", data[:8])
    try:
        header = json.loads(data[8:8 + size])
        if not isinstance(header, dict) or not isinstance(header.get("sizes", []), list):
            raise ValueError("not a result header")
        arrays, offset = [], 8 + size
        for length in header.get("sizes", []):
            arrays.append(labels_from_npy(data[offset:offset + int(length)]))
            offset += int(length)
    except Exception as exc:  # noqa: BLE001 - whatever the bytes are, the submission gets a message, not a crash
        return None, [], f"the evaluation's result could not be read: {exc.__class__.__name__}: {exc}"
    return header, arrays, None


# --- one evaluator per staged test set, shared by a class's threads and kept by a service's workers ---------------

_SHARED: dict[tuple, WarmEvaluator] = {}
_SHARED_LOCK = threading.Lock()
_KEEP = 2  # evaluators alive at once (each holds torch and the test images in memory)


def shared(images: Path, unseen: Optional[Path], limits: RunLimits) -> WarmEvaluator:
    """The warm evaluator for this test set and these limits, started on first use."""
    key = (str(Path(images).resolve()), str(unseen) if unseen else None, limits.memory_bytes,
           limits.max_processes, limits.max_file_bytes, sys.executable)
    with _SHARED_LOCK:
        evaluator = _SHARED.pop(key, None) or WarmEvaluator(images, unseen, limits=limits)
        _SHARED[key] = evaluator  # most recently used last
        while len(_SHARED) > _KEEP:
            _SHARED.pop(next(iter(_SHARED))).retire()  # evaluations in flight finish first
        return evaluator


def enabled() -> bool:
    """Off only by GRADER_WARM_EVAL=0 (then every submission gets a fresh sandbox, as before)."""
    return os.environ.get("GRADER_WARM_EVAL", "1") != "0"


@atexit.register
def close_all() -> None:
    with _SHARED_LOCK:
        while _SHARED:
            _SHARED.popitem()[1].close()
