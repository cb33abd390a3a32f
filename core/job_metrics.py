"""Cluster-wide job metrics kept in Redis: the scripts that change a job's state count into two hashes in the
same call (the enqueue and abort scripts directly; a worker gathers its share, core/worker/metrics.py, and hands
it to one of its finish calls a second), so any API replica's `/metrics` shows the work of every worker without
an extra round trip per job. This module owns the layout both sides agree on.

Layout (fields are `|`-joined; function names never contain `|`: the registry refuses them):
- `platform:metrics:counts` (hash of integers):
  `enqueued|<function>`, `retried|<function>`, `finished|<function>|<outcome>` with outcome one of
  complete, failed, dead, aborted.
- `platform:metrics:hist` (hash): per histogram `<name>` in (duration, queue_wait) and function:
  `<name>|<function>|<i>` the count of observations in bucket i (not cumulative; i indexes BUCKETS, and
  i == len(BUCKETS) is +Inf), `<name>|<function>|sum` the sum of observed seconds (HINCRBYFLOAT).
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

from arq.connections import ArqRedis

COUNTS_KEY = "platform:metrics:counts"
HIST_KEY = "platform:metrics:hist"
HISTOGRAMS = ("duration", "queue_wait")
OUTCOMES = ("complete", "failed", "dead", "aborted")
# Seconds; the upper bound of each bucket (Prometheus `le`), +Inf implied after the last.
BUCKETS: tuple[float, ...] = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0)


def bucket_index(seconds: float) -> int:
    """The bucket an observation falls in: the first bound >= seconds, or len(BUCKETS) for +Inf."""
    return bisect.bisect_left(BUCKETS, seconds)


@dataclass
class Histogram:
    buckets: list[int] = field(default_factory=lambda: [0] * (len(BUCKETS) + 1))
    sum: float = 0.0

    @property
    def count(self) -> int:
        return sum(self.buckets)


@dataclass
class JobMetrics:
    """A snapshot of the cluster's job metrics, as read from Redis."""

    counts: dict[tuple[str, ...], int] = field(default_factory=dict)
    histograms: dict[tuple[str, str], Histogram] = field(default_factory=dict)


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def parse(counts: dict[bytes, bytes], hist: dict[bytes, bytes]) -> JobMetrics:
    """Build a snapshot from the two hashes; a field that does not fit the layout is skipped."""
    metrics = JobMetrics()
    for raw_field, raw_value in counts.items():
        parts = tuple(_text(raw_field).split("|"))
        try:
            metrics.counts[parts] = int(raw_value)
        except ValueError:
            continue
    for raw_field, raw_value in hist.items():
        name_fn_bucket = _text(raw_field).split("|")
        if len(name_fn_bucket) != 3 or name_fn_bucket[0] not in HISTOGRAMS:
            continue
        name, function, bucket = name_fn_bucket
        histogram = metrics.histograms.setdefault((name, function), Histogram())
        try:
            if bucket == "sum":
                histogram.sum = float(raw_value)
            elif 0 <= (index := int(bucket)) <= len(BUCKETS):
                histogram.buckets[index] = int(raw_value)
        except ValueError:
            continue
    return metrics


async def read(redis: ArqRedis) -> JobMetrics:
    """Both hashes in one round trip."""
    async with redis.pipeline(transaction=False) as pipe:
        pipe.hgetall(COUNTS_KEY)
        pipe.hgetall(HIST_KEY)
        counts, hist = await pipe.execute()
    return parse(counts, hist)
