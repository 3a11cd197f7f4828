"""What every front door shares (the /v1 API, the upload page, the LTI page): accepting a submission
into the queue, describing a job, and the workers and deliveries behind them."""

from __future__ import annotations

import json
import logging
import time
from datetime import datetime, timezone
from typing import Optional
from urllib.parse import urlsplit

import httpx

from grader.executors import gpu_indices
from grader.report.audience import student_comment
from grader.rubric.sheet import ScoreSheet
from grader.service.assignments import Assignments
from grader.service.errors import ServiceError
from grader.service.grading import Grader
from grader.service.intake import Upload, check_notebook
from grader.service.lti.ags import ScorePoster
from grader.service.lti.config import Registrations
from grader.service.lti.keys import ToolKey
from grader.service.lti.launch import Launcher
from grader.service.lti.lineitems import LineItems, Resource
from grader.service.lti.tokens import ServiceCalls
from grader.service.metrics import Metrics
from grader.service.outbox import Outbox, Permanent
from grader.service.regrade import regrade
from grader.service.selfcheck import SelfCheck
from grader.service.settings import ServiceSettings
from grader.service.signing import DELIVERY, signed_headers
from grader.service.store import DeliveryConflict, Job, NewJob, RateLimited, Store
from grader.service.workers import WorkerPool

log = logging.getLogger("grader.service")


def _iso(at: Optional[float]) -> Optional[str]:
    return datetime.fromtimestamp(at, timezone.utc).isoformat(timespec="seconds") if at else None


def _rate_limited(limited: RateLimited, what: str, where: str) -> ServiceError:
    wait = int(limited.retry_after + 0.999)
    return ServiceError(429, "rate_limited", what, where=where, fix=f"try again in {wait} s (the Retry-After header)",
                        headers={"Retry-After": str(wait)})


class Service:
    def __init__(self, settings: ServiceSettings, store: Store, assignments: Assignments,
                 registrations: Registrations, key: ToolKey, base_url: str):
        self.settings, self.store, self.assignments, self.registrations = settings, store, assignments, registrations
        self.base_url = base_url.rstrip("/")
        self.http = httpx.Client(timeout=settings.callback_timeout, follow_redirects=False)
        self.key = key
        self.launcher = Launcher(registrations, store, key, self.base_url, self.http)
        self.calls = ServiceCalls(key, self.http)
        self.lineitems = LineItems(self.calls, store)
        self.poster = ScorePoster(registrations, self.calls, self.lineitems)
        self.metrics = Metrics(store)
        self.grader = Grader(assignments, settings.reports, settings.scratch, settings.data,
                             executor=settings.executor, address=settings.address, slots=settings.workers)
        self.gpu = bool(gpu_indices()) if settings.gpu is None else settings.gpu
        self.pool = WorkerPool(store, self.grader, workers=settings.workers, gpu=self.gpu,
                               lease_seconds=settings.lease_seconds, max_attempts=settings.max_attempts,
                               on_settled=self._settled)
        self.outbox = Outbox(store, {"callback": self._send_callback, "lti": self._send_score},
                             attempts=settings.callback_attempts, backoff=settings.callback_backoff,
                             on_result=lambda kind, ok: self.metrics.deliveries.labels(
                                 kind, "sent" if ok else "failed").inc())

    def start(self) -> None:
        requeued = self.store.recover()
        if requeued:
            log.warning("%d job(s) were interrupted by the last stop; they run again from the start", requeued)
        self.grader.clear_scratch()
        self.grader.open()
        self.pool.start()
        self.outbox.start()

    def stop(self) -> None:
        released = self.pool.stop(self.settings.stop_grace)
        if released:
            log.warning("%d job(s) still grading were put back in the queue for the next start", released)
        self.grader.close()
        self.outbox.stop()
        self.http.close()

    # accepting

    def accept(self, upload: Upload, *, source: str, delivery: Optional[str] = None, signature: Optional[str] = None,
               body_sha256: Optional[str] = None) -> tuple[Job, bool]:
        """Check a submission and queue it (the job is on disk when this returns), or return the job this
        delivery (or this very signed request) created before: the store answers a retry before the rate limit."""
        assignment = self.assignments.get(upload.assignment)
        check_notebook(upload.notebook)
        if assignment.needs_model and upload.model is None:
            raise ServiceError(422, "missing_model", f"assignment {assignment.id!r} is graded from the exported "
                               f"model, and none was sent", where="model",
                               fix="export it in the notebook with torch.export.save(torch.export.export(model, (x,)), "
                                   "'model.pt2') and send that file as `model` beside the notebook")
        new = NewJob(student=upload.student, assignment=assignment.id, source=source, notebook=upload.notebook,
                     model=upload.model, callback_url=upload.callback_url, lti=upload.lti,
                     delivery=delivery, signature=signature, body_sha256=body_sha256, needs_gpu=assignment.needs_gpu())
        rate = self.settings.rate
        try:
            job, created = self.store.submit(new, rate=(rate.count, rate.seconds))
        except RateLimited as limited:
            raise _rate_limited(limited, f"student {upload.student!r} has sent {limited.count} submissions through "
                                f"{source} in the last {rate.seconds:g} s, the most this server accepts",
                                "student_id") from None
        except DeliveryConflict as conflict:
            raise ServiceError(409, "delivery_conflict", f"{DELIVERY} {delivery!r} was used before for a different "
                               f"submission (job {conflict.job.id})", where=DELIVERY,
                               fix="send a new delivery id for each submission and reuse it only to retry the same "
                                   "one") from None
        if created:
            self.pool.wake()
        return job, created

    def accept_selfcheck(self, check: SelfCheck) -> Job:
        """Queue a self-check (on disk when this returns), counted against its bucket's rate."""
        new = NewJob(student=check.bucket, assignment=check.assignment, source="selfcheck",
                     notebook=check.notebook or b"", depth=check.depth, link=check.link,
                     needs_gpu=self.assignments.get(check.assignment).needs_gpu(check.depth))
        rate = self.settings.selfcheck_rate
        try:
            job, _ = self.store.submit(new, rate=(rate.count, rate.seconds))
        except RateLimited as limited:
            raise _rate_limited(limited, f"{limited.count} self-checks in the last {rate.seconds:g} s from this "
                                "address with this key (or from this course login), the most this server runs",
                                "self-check") from None
        self.pool.wake()
        return job

    def submission(self, job_id: str) -> Optional[Job]:
        """A submission by id; a self-check is none (its id answers only at /v1/selfcheck)."""
        job = self.store.get(job_id)
        return None if job is None or job.selfcheck else job

    def regrade(self, assignment_id: str) -> dict:
        """Re-score the assignment's graded submissions with its rubric as its file now says (`regrade`)."""
        answer = regrade(self.store, self.assignments, self.grader, assignment_id)
        self.outbox.wake()
        return answer

    def _regraded(self, job: Job) -> tuple[int, Optional[float]]:
        """How many times the job was re-scored, and when last (None: never)."""
        times = [at for at, kind, _, _ in self.store.events(job.id) if kind == "rescored"]
        return len(times), max(times, default=None)

    def _settled(self, job: Job) -> None:
        assert job.started is not None, f"job {job.id} settled without having started"
        self.metrics.lane_wait.labels(job.lane).observe(job.started - job.submitted)
        settled = self.store.get(job.id)
        if settled and settled.status == "graded" and not settled.selfcheck and settled.finished is not None:
            self.metrics.submit_to_graded.observe(settled.finished - settled.submitted)
        self.outbox.wake()

    # describing

    def url(self, path: str) -> str:
        return self.base_url + path

    def resource(self, assignment_id: str) -> Resource:
        """The assignment as an LMS grade-book column sees it: resourceId, label, scoreMaximum."""
        assignment = self.assignments.get(assignment_id)
        return Resource(id=assignment.id, label=assignment.title or assignment.id,
                        score_maximum=assignment.rubric.max_score)

    def describe(self, job: Job) -> dict:
        """The job as GET /v1/submissions/{id} and the callbacks show it."""
        links = {"status": self.url(f"/v1/submissions/{job.id}"), "page": self.url(f"/submissions/{job.id}")}
        if job.status == "graded":
            links["report_html"] = self.url(f"/submissions/{job.id}/report.html")
            links["results_json"] = self.url(f"/submissions/{job.id}/results.json")
        deliveries = {d.kind: {"state": d.state, "attempts": d.attempts, "error": d.last_error,
                               "at": _iso(d.updated)} for d in self.store.deliveries(job.id)}
        return {
            "id": job.id, "status": job.status, "student_id": job.student, "assignment": job.assignment,
            "submitted_at": _iso(job.submitted), "started_at": _iso(job.started), "finished_at": _iso(job.finished),
            "attempts": job.attempts, "queue_position": self.store.position(job) if job.status == "queued" else None,
            "score": job.score, "max_score": job.max_score, "passed": job.passed, "reason": job.reason,
            "sheet": job.sheet, "links": links,
            "callback": deliveries.get("callback") if job.callback_url else None,
            "lti_passback": deliveries.get("lti") if job.lti else None,
        }

    # delivering

    def _send_callback(self, job: Job) -> None:
        assert job.callback_url is not None, f"a callback delivery for job {job.id}, which has no callback URL"
        body = json.dumps(self.describe(job)).encode()
        regraded, _ = self._regraded(job)  # a re-grade's callback is another delivery: receivers de-duplicate by id
        event, delivery = (("regraded", f"{job.id}.regraded.{regraded}") if regraded
                           else (job.status, f"{job.id}.{job.status}"))
        headers = {"Content-Type": "application/json", "X-Grader-Event": f"submission.{event}",
                   **signed_headers(self.settings.secret, "POST", urlsplit(job.callback_url).path or "/", body,
                                    delivery=delivery)}
        response = self.http.post(job.callback_url, content=body, headers=headers)
        if 400 <= response.status_code < 500 and response.status_code not in (408, 425, 429):
            raise Permanent(f"the callback URL answered HTTP {response.status_code}: {response.text[:300]}")
        response.raise_for_status()

    def _send_score(self, job: Job) -> None:
        assert job.lti is not None, f"a grade passback for job {job.id}, which has no LTI launch"
        comment = student_comment(ScoreSheet.model_validate(job.sheet), on=job.assignment,  # only graded jobs
                                  see=f"Report: {self.url(f'/submissions/{job.id}')}")
        known = self.assignments.by_id.get(job.assignment)  # the rubric may have left since: the job knows enough
        resource = Resource(id=job.assignment, label=known.title if known else job.assignment,
                            score_maximum=job.max_score or 0.0)
        _, regraded_at = self._regraded(job)  # a platform keeps the score with the latest timestamp
        self.poster.send(job.lti, resource, job.score, job.max_score, comment,
                         regraded_at or job.finished or time.time())
