"""Grading threads: each claims the next waiting job (lanes.py: self-checks first, then a fair share across
assignments; jobs that need a GPU only on a node with one) with a lease, grades it, and completes it.

Threads rather than processes: the grading itself runs in sandboxed child processes
(evaluate, execute) or is a second of parsing (static), and a SIGKILL of the server
must take its workers with it, never leave one behind that completes a job later.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from typing import Optional

from grader import pysyntax
from grader.errors import GraderError
from grader.service.store import Job, JobResult, Store, Unusable

log = logging.getLogger("grader.service")

GradeJob = Callable[[Job, bytes, Optional[bytes]], JobResult]


class WorkerPool:
    def __init__(self, store: Store, grade: GradeJob, *, workers: int, lease_seconds: float, max_attempts: int,
                 gpu: bool = False, on_settled: Callable[[Job], None] = lambda job: None):
        self.store, self.grade, self.gpu = store, grade, gpu  # gpu: this node takes the jobs that need one
        self.workers, self.lease, self.max_attempts = workers, lease_seconds, max_attempts
        self.on_settled = on_settled
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        for index in range(self.workers):
            self._threads.append(threading.Thread(target=self._work, name=f"grader-worker-{index}", daemon=True))
        self._threads.append(threading.Thread(target=self._heartbeat, name="grader-leases", daemon=True))
        for thread in self._threads:
            thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self, grace: float) -> int:
        """Stop claiming; wait up to `grace` seconds for running jobs, then hand the rest back to the queue."""
        self._stop.set()
        self._wake.set()
        deadline = time.monotonic() + grace
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        return self.store.release(self.owner)

    def _heartbeat(self) -> None:
        while not self._stop.wait(self.lease / 3):
            try:
                self.store.renew(self.owner, self.lease)
            except Exception:  # a busy database now and then must not end the renewals
                log.exception("renewing leases failed")

    def _work(self) -> None:
        while not self._stop.is_set():
            try:
                job = self.store.claim(self.owner, self.lease, self.max_attempts, gpu=self.gpu)
            except Exception:
                log.exception("claiming a job failed")
                job = None
            if job is None:
                self._wake.wait(1.0)
                self._wake.clear()
                continue
            self._run(job)

    def _run(self, job: Job) -> None:
        log.info("grading %s (%s, %s), attempt %d", job.id, job.assignment, job.student, job.attempts)
        try:
            notebook, model = self.store.files(job.id)
            result = self.grade(job, notebook, model)
        except Unusable as err:  # the sender's files, not the server: the reason is theirs to act on
            settled = self.store.fail(job, self.owner, str(err))
        except GraderError as err:  # the server's set-up (no MNIST, no bubblewrap): every job would fail alike
            settled = self.store.fail(job, self.owner, f"the grader could not run: {err.render()}")
        except Exception as exc:
            log.error("grading %s failed:\n%s", job.id, pysyntax.format_exc())
            settled = self.store.fail(job, self.owner, f"internal error while grading: {exc.__class__.__name__}: "
                                                       f"{exc}; the server log has the details")
        else:
            settled = self.store.complete(job, self.owner, result)
        if not settled:
            log.warning("job %s attempt %d lost its lease; its result was dropped", job.id, job.attempts)
            return
        self.on_settled(job)
