"""/metrics: the queue in the Prometheus text format, with the official client library.

Gauges (jobs per queue and state, paused queues, jobs running and the limits of each
queue, workers and their slots) are read from the store at each scrape. Counters and
histograms come from the history of runs: each scrape reads the runs finished since the
previous one, so they count from this process's start, as any Prometheus counter does
(rate() and increase() allow for the reset when the dashboard restarts).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily

from ..queue import Queue
from .counts import JobCounts

DURATION_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)
PICKUP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
# A run is read once it is committed; one that commits up to this many seconds after its
# finish time (a slow transaction, another host's clock on SQLite) is still counted once.
OVERLAP = 10.0
BATCH = 10_000


class QueueMetrics:
    def __init__(self, queue: Queue, started: float, counts: JobCounts):
        self.queue = queue
        self.registry = CollectorRegistry(auto_describe=True)
        self.registry.register(_Gauges(queue, counts))
        self.finished = Counter(
            "queuectl_jobs_finished", "Runs finished, by queue and outcome (completed,"
            " failed, dead, canceled, lost)", ["queue", "outcome"], registry=self.registry,
        )  # fmt: skip
        self.failed = Counter(
            "queuectl_jobs_failed", "Runs that failed (outcome failed, dead or lost)",
            ["queue"], registry=self.registry,
        )  # fmt: skip
        self.duration = Histogram(
            "queuectl_job_duration_seconds", "How long runs took, start to finish",
            ["queue"], buckets=DURATION_BUCKETS, registry=self.registry,
        )  # fmt: skip
        self.pickup = Histogram(
            "queuectl_job_pickup_latency_seconds", "From when a job was due to when its"
            " run started", ["queue"], buckets=PICKUP_BUCKETS, registry=self.registry,
        )  # fmt: skip
        self.started = self.since = started
        self.seen: dict[int, float] = {}  # run id -> finished_at, within the overlap

    def read_new_runs(self) -> None:
        """Count the runs finished since the last read, each exactly once: the read
        starts OVERLAP seconds back (runs seen there are skipped) and pages forward."""
        after: tuple[float, int] = (self.since - OVERLAP, -1)
        while True:
            rows = self.queue.runs_finished_since(after, BATCH)
            # runs that finished before this process started are not counted
            fresh = [row for row in rows if row[0] not in self.seen and row[5] >= self.started]
            for run_id, queue, outcome, seconds, waited, finished_at in fresh:
                self.seen[run_id] = finished_at
                self.finished.labels(queue, outcome).inc()
                if outcome in ("failed", "dead", "lost"):
                    self.failed.labels(queue).inc()
                self.duration.labels(queue).observe(max(0.0, seconds))
                if waited is not None:
                    self.pickup.labels(queue).observe(max(0.0, waited))
            if rows:
                self.since = max(self.since, rows[-1][5])
                after = (rows[-1][5], rows[-1][0])
            if len(rows) < BATCH:
                break
        horizon = self.since - OVERLAP
        self.seen = {i: at for i, at in self.seen.items() if at >= horizon}

    def render(self) -> bytes:
        from prometheus_client import generate_latest

        self.read_new_runs()
        return generate_latest(self.registry)


class _Gauges:
    """Read at each scrape, straight from the store."""

    def __init__(self, queue: Queue, counts: JobCounts):
        self.queue = queue
        self.counts = counts

    def describe(self):
        return []  # nothing to check at registration; the metrics are dynamic

    def collect(self):
        jobs = GaugeMetricFamily(
            "queuectl_jobs", "Jobs by queue and state", labels=["queue", "state"]
        )
        paused = GaugeMetricFamily(
            "queuectl_queue_paused", "1 while the queue is paused", labels=["queue"]
        )
        running = GaugeMetricFamily(
            "queuectl_queue_running", "Jobs of the queue running now", labels=["queue"]
        )
        paused_queues = self.queue.paused_queues()
        for queue, counts in self.counts.get(self.queue).items():
            for state, n in counts.items():
                jobs.add_metric([queue, state], n)
            paused.add_metric([queue], 1 if queue in paused_queues else 0)
            running.add_metric([queue], counts["processing"])
        workers = self.queue.workers()
        yield jobs
        yield paused
        yield running
        yield from self._limits()
        yield GaugeMetricFamily(
            "queuectl_workers", "Worker pools alive (heartbeating)", value=len(workers)
        )
        yield GaugeMetricFamily(
            "queuectl_worker_slots", "Job slots of the pools alive",
            value=sum(w.slots for w in workers),
        )  # fmt: skip
        yield GaugeMetricFamily(
            "queuectl_worker_busy_slots", "Slots running a job now",
            value=sum(w.to_dict()["busy"] for w in workers),
        )  # fmt: skip

    def _limits(self):
        """The limits of the queues that have some (a queue without one has no sample)."""
        concurrency = GaugeMetricFamily(
            "queuectl_queue_concurrency_limit", "At most this many of the queue's jobs run"
            " at once (queue set --concurrency)", labels=["queue"],
        )  # fmt: skip
        rate = GaugeMetricFamily(
            "queuectl_queue_rate_limit", "At most this many of the queue's jobs start in"
            " any rate period (queue set --rate)", labels=["queue"],
        )  # fmt: skip
        period = GaugeMetricFamily(
            "queuectl_queue_rate_period_seconds", "The queue's rate period", labels=["queue"]
        )
        for name, limits in self.queue.queue_limits().items():
            if limits.concurrency is not None:
                concurrency.add_metric([name], limits.concurrency)
            if limits.rate_limit is not None and limits.rate_period is not None:
                rate.add_metric([name], limits.rate_limit)
                period.add_metric([name], limits.rate_period)
        yield concurrency
        yield rate
        yield period
