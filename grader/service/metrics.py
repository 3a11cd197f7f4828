"""Prometheus metrics: queue depth, jobs and self-checks by status, jobs by lane and status (read from the store
at each scrape), time from submit to graded, the wait from submit to start per lane, rejections by reason,
deliveries by outcome."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily

from grader.service.lanes import LANES
from grader.service.store import STATUSES, Store

# Static grades take about a second; evaluate-mode ones seconds; executed notebooks minutes to an hour.
BUCKETS = (0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, float("inf"))
WAIT_BUCKETS = (0.05, 0.1, 0.25, *BUCKETS)  # a self-check should start within a fraction of a second


class _StoreCollector:
    def __init__(self, store: Store):
        self.store = store

    def collect(self):
        counts, checks = self.store.counts(), self.store.counts(selfchecks=True)
        depth = GaugeMetricFamily("grader_queue_depth", "Jobs waiting for a worker (submissions and self-checks)")
        depth.add_metric([], counts["queued"] + checks["queued"])
        yield depth
        for name, about, found in (("grader_jobs", "Submissions in the store by status", counts),
                                   ("grader_selfchecks", "Self-checks (no grade) in the store by status", checks)):
            family = GaugeMetricFamily(name, about, labels=["status"])
            for status in STATUSES:
                family.add_metric([status], found[status])
            yield family
        lanes = GaugeMetricFamily("grader_lane_jobs", "Jobs in the store by lane (selfcheck, submission, regrade) "
                                  "and status", labels=["lane", "status"])
        for lane, found in self.store.lane_counts().items():
            for status in STATUSES:
                lanes.add_metric([lane, status], found[status])
        yield lanes


class Metrics:
    def __init__(self, store: Store):
        self.registry = CollectorRegistry()
        self.registry.register(_StoreCollector(store))
        self.submit_to_graded = Histogram("grader_submit_to_graded_seconds",
                                          "Time from the 202 to the score, for jobs graded by this process",
                                          buckets=BUCKETS, registry=self.registry)
        self.lane_wait = Histogram("grader_lane_wait_seconds", "Time from the 202 to a worker starting the job "
                                   "(the attempt that settled it), by lane, for jobs settled by this process",
                                   ["lane"], buckets=WAIT_BUCKETS, registry=self.registry)
        for lane in LANES:  # every lane shows from the first scrape, at 0
            self.lane_wait.labels(lane)
        self.rejections = Counter("grader_rejections", "Requests refused, by reason (the error code)",
                                  ["code"], registry=self.registry)
        self.deliveries = Counter("grader_deliveries", "Callbacks and grade passbacks, by kind and outcome",
                                  ["kind", "outcome"], registry=self.registry)

    def render(self) -> bytes:
        return generate_latest(self.registry)
