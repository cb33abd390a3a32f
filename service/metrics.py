"""Prometheus metrics: the API's own HTTP families, counted in process by the guard (service/guard.py), and the
cluster's job families, read from Redis once per scrape (core/job_metrics.py, the queue and the live workers),
so any API replica shows the work of every worker.

Each app has its own `CollectorRegistry` (no process-global state shared between apps or tests). Route labels
are route templates (`/v1/jobs/{job_id}`), never raw paths, and methods outside the standard ones are `other`:
a client cannot grow the label sets.
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from arq.connections import ArqRedis
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from core import job_metrics, keys
from core.workers import WorkerRecord, records_of

UNMATCHED_ROUTE = "unmatched"
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
QUEUE_STATES = ("queued", "deferred", "in_progress")


# Seconds (Prometheus' default buckets), +Inf implied after the last.
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)


@dataclass
class _Durations:
    buckets: list[int] = field(default_factory=lambda: [0] * (len(HTTP_BUCKETS) + 1))
    sum: float = 0.0


class HttpMetrics(Collector):
    """`http_requests_total{method,route,status}` and `http_request_duration_seconds{method,route}`.

    Plain counters, rendered at scrape time: observed once per request on the event loop (by the guard), where
    prometheus-client's own Counter and Histogram (a lock and a label lookup each) cost several times more.
    """

    def __init__(self) -> None:
        self.requests: dict[tuple[str, str, int], int] = {}
        self.durations: dict[tuple[str, str], _Durations] = {}
        self.registry = CollectorRegistry()
        self.registry.register(self)

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        if method not in METHODS:
            method = "other"
        key = (method, route, status)
        self.requests[key] = self.requests.get(key, 0) + 1
        durations = self.durations.get(key[:2])
        if durations is None:
            durations = self.durations[key[:2]] = _Durations()
        durations.buckets[bisect.bisect_left(HTTP_BUCKETS, seconds)] += 1
        durations.sum += seconds

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "http_requests",
            "HTTP requests answered, by route template and status.",
            labels=["method", "route", "status"],
        )
        for (method, route, status), count in sorted(self.requests.items()):
            requests.add_metric([method, route, str(status)], count)
        yield requests
        durations = HistogramMetricFamily(
            "http_request_duration_seconds", "Time from a request's arrival to the end of its response.",
            labels=["method", "route"],
        )  # fmt: skip
        for labels, observed in sorted(self.durations.items()):
            durations.add_metric(list(labels), _cumulative(HTTP_BUCKETS, observed.buckets), observed.sum)
        yield durations


def _cumulative(bounds: tuple[float, ...], counts: list[int]) -> list[tuple[str, float]]:
    """Per-bucket counts as Prometheus' cumulative `le` buckets, +Inf last."""
    total, buckets = 0, []
    for bound, count in zip([*map(repr, bounds), "+Inf"], counts, strict=True):
        total += count
        buckets.append((bound, float(total)))
    return buckets


@dataclass
class ClusterSnapshot:
    """What one scrape read from Redis."""

    jobs: job_metrics.JobMetrics
    queue: str
    due: int
    deferred: int
    workers: list[WorkerRecord] = field(default_factory=list)


async def read_cluster(pool: ArqRedis, queue: str) -> ClusterSnapshot:
    """The job metrics, the queue's counts and the live workers' ids in one round trip; their records in a
    second (skipped when no worker is alive)."""
    now_ms = time.time() * 1000
    async with pool.pipeline(transaction=False) as pipe:
        pipe.hgetall(job_metrics.COUNTS_KEY)
        pipe.hgetall(job_metrics.HIST_KEY)
        pipe.zcount(queue, "-inf", now_ms)
        pipe.zcount(queue, f"({now_ms}", "+inf")
        pipe.zrange(keys.WORKERS, 0, -1)
        counts, hist, due, deferred, worker_ids = await pipe.execute()
    workers: list[WorkerRecord] = []
    if worker_ids:
        workers = records_of(worker_ids, await pool.mget([keys.worker(w.decode()) for w in worker_ids]))
    return ClusterSnapshot(job_metrics.parse(counts, hist), queue, int(due), int(deferred), workers)


class ClusterCollector(Collector):
    """The Redis-backed families, from one snapshot."""

    def __init__(self, snapshot: ClusterSnapshot) -> None:
        self.snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        jobs = self.snapshot.jobs
        enqueued = CounterMetricFamily("jobs_enqueued", "Jobs enqueued, cluster-wide.", labels=["function"])
        retried = CounterMetricFamily("jobs_retried", "Tries that ended in a retry, cluster-wide.", labels=["function"])
        finished = CounterMetricFamily(
            "jobs_finished", "Jobs that ended, by outcome (complete, failed, dead, aborted).",
            labels=["function", "outcome"],
        )  # fmt: skip
        for parts, value in sorted(jobs.counts.items()):
            match parts:
                case ("enqueued", function):
                    enqueued.add_metric([function], value)
                case ("retried", function):
                    retried.add_metric([function], value)
                case ("finished", function, outcome):
                    finished.add_metric([function, outcome], value)
        yield from (enqueued, finished, retried)
        histograms = {
            "duration": HistogramMetricFamily(
                "job_duration_seconds", "How long a try ran.", labels=["function"]
            ),
            "queue_wait": HistogramMetricFamily(
                "job_queue_wait_seconds", "How long a job waited between being due and starting.", labels=["function"]
            ),
        }  # fmt: skip
        for (name, function), histogram in sorted(jobs.histograms.items()):
            family = histograms.get(name)
            if family is None:
                continue
            family.add_metric([function], _cumulative(job_metrics.BUCKETS, histogram.buckets), histogram.sum)
        yield from histograms.values()
        snapshot = self.snapshot
        running = sum(w.stats.ongoing for w in snapshot.workers if w.queue == snapshot.queue)
        queue_jobs = GaugeMetricFamily(
            "queue_jobs", "Jobs in the queue: due and waiting, deferred, running.", labels=["queue", "state"]
        )
        counts = {"queued": max(0, snapshot.due - running), "deferred": snapshot.deferred, "in_progress": running}
        for state in QUEUE_STATES:
            queue_jobs.add_metric([snapshot.queue, state], counts[state])
        yield queue_jobs
        yield GaugeMetricFamily("workers_alive", "Worker processes with a live heartbeat.", len(snapshot.workers))


def redis_up(up: bool) -> bytes:
    family = GaugeMetricFamily("redis_up", "1 when this scrape could read the cluster's metrics from Redis.", int(up))
    return _render(family)


def _render(*families: Metric) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Fixed(families))
    return generate_latest(registry)


class _Fixed(Collector):
    def __init__(self, families: tuple[Metric, ...]) -> None:
        self.families = families

    def collect(self) -> Iterator[Metric]:
        yield from self.families


def render(http: HttpMetrics, snapshot: ClusterSnapshot | None) -> bytes:
    """The exposition text: the HTTP families, `redis_up`, and the cluster's families when Redis answered."""
    text = generate_latest(http.registry) + redis_up(snapshot is not None)
    if snapshot is not None:
        text += _render(*ClusterCollector(snapshot).collect())
    return text
