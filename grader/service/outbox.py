"""Outgoing deliveries (signed callbacks, LTI grade passback), sent by their own threads.

Completing a job writes its deliveries in the same transaction (store.py); here
they are claimed with a lease and sent with retries and exponential backoff
(tenacity). A delivery that keeps failing is recorded on the job as failed with
the last error; grading never waits for one. Deliveries are at-least-once: a
server killed after sending but before recording sends again on restart, so
receivers de-duplicate on the X-Grader-Delivery header (callbacks) or simply
overwrite (an LTI score for the same user and line item replaces the last one).
"""

from __future__ import annotations

import logging
import os
import threading
import uuid
from collections.abc import Callable

from tenacity import Retrying, retry_if_not_exception_type, stop_after_attempt, wait_exponential

from grader.service.store import Delivery, Job, Store

log = logging.getLogger("grader.service")

LEASE_SECONDS = 600.0  # longer than the retries of one delivery can take


class Permanent(Exception):
    """A failure that retrying cannot fix (the receiver said 4xx, the job names no platform we know)."""


Sender = Callable[[Job], None]


class Outbox:
    def __init__(self, store: Store, senders: dict[str, Sender], *, attempts: int, backoff: float, threads: int = 2,
                 on_result: Callable[[str, bool], None] = lambda kind, ok: None):
        self.store, self.senders, self.on_result = store, senders, on_result
        self.attempts, self.backoff, self.threads = attempts, backoff, threads
        self.owner = f"outbox:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        self._threads = [threading.Thread(target=self._loop, name=f"grader-outbox-{i}", daemon=True)
                         for i in range(self.threads)]
        for thread in self._threads:
            thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self, grace: float = 2.0) -> None:
        self._stop.set()
        self._wake.set()
        for thread in self._threads:
            thread.join(grace)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                delivery = self.store.claim_delivery(self.owner, LEASE_SECONDS)
            except Exception:
                log.exception("claiming a delivery failed")
                delivery = None
            if delivery is None:
                self._wake.wait(1.0)
                self._wake.clear()
                continue
            self.send(delivery)

    def send(self, delivery: Delivery) -> None:
        job = self.store.get(delivery.job_id)
        retrying = Retrying(stop=stop_after_attempt(self.attempts),
                            wait=wait_exponential(multiplier=self.backoff, min=self.backoff, max=30),
                            retry=retry_if_not_exception_type(Permanent), reraise=True,
                            before_sleep=lambda state: log.info(
                                "%s for job %s failed (attempt %d): %s", delivery.kind, delivery.job_id,
                                state.attempt_number, state.outcome.exception() if state.outcome else None))
        try:
            retrying(self.senders[delivery.kind], job)
        except Exception as exc:
            tries = retrying.statistics.get("attempt_number", 1)
            error = f"{exc.__class__.__name__}: {exc}" if not isinstance(exc, Permanent) else str(exc)
            log.warning("%s for job %s failed after %d attempt(s): %s", delivery.kind, delivery.job_id, tries, error)
            self.store.finish_delivery(delivery, ok=False, attempts=tries, error=error[:2000])
            self.on_result(delivery.kind, False)
            return
        self.store.finish_delivery(delivery, ok=True, attempts=retrying.statistics.get("attempt_number", 1),
                                   error=None)
        self.on_result(delivery.kind, True)
