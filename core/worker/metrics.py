"""The worker's share of the cluster-wide job metrics (core/job_metrics.py) and of its queue's throughput, carried
to Redis by the finish script it calls anyway: no round trip of their own.

Under load a worker gathers them here and hands them to one finish call a second, so they cost a few Redis
commands a second instead of four per job; a worker whose job is the only one running hands them over at once,
so an idle worker's figures are never behind. The finish script applies them only when it writes its outcome (a
stale copy's call changes nothing, so what it carried is kept for the next one).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from arq.connections import ArqRedis

from core import job_metrics, keys
from core.scripts import scripts

FLUSH_INTERVAL_S = 1.0
# Kinds of a delta (the first column of a line the finish script reads): a counter, a histogram bucket, a
# histogram sum (float), jobs ended in a throughput bucket.
COUNT, BUCKET, SUM, FINISHED = "C", "H", "F", "T"

Delta = tuple[str, str]  # (kind, field)
# What one try's end added, so that a write that did not happen can take it back.
Observation = list[tuple[Delta, float]]


@dataclass
class MetricsBuffer:
    """Deltas gathered since the last hand-over (plain dicts: this runs once a job, on the worker's hot path)."""

    queue_name: str
    counts: dict[Delta, float] = field(default_factory=dict)
    last_flush: float = field(default_factory=time.monotonic)
    _fields: dict[tuple[str, str], tuple[Delta | None, Delta, Delta, str]] = field(default_factory=dict)
    _buckets: dict[tuple[str, str, int], Delta] = field(default_factory=dict)
    _finished: tuple[int, Delta] = (-1, (FINISHED, ""))

    def _fields_of(self, function: str, event: str) -> tuple[Delta | None, Delta, Delta, str]:
        """The fields a (function, event) pair adds to, made once."""
        found = self._fields.get((function, event))
        if found is None:
            count: Delta | None = None
            if event == "retrying":
                count = (COUNT, f"retried|{function}")
            elif event in job_metrics.OUTCOMES:
                count = (COUNT, f"finished|{function}|{event}")
            found = (count, (SUM, f"duration|{function}|sum"), (SUM, f"queue_wait|{function}|sum"), function)
            self._fields[(function, event)] = found
        return found

    def _bucket(self, histogram: str, function: str, seconds: float) -> Delta:
        index = job_metrics.bucket_index(seconds)
        found = self._buckets.get((histogram, function, index))
        if found is None:
            found = self._buckets[(histogram, function, index)] = (BUCKET, f"{histogram}|{function}|{index}")
        return found

    def observe(
        self, function: str, event: str, duration_s: float | None, queue_wait_s: float, now_ms: int
    ) -> Observation:
        """Add one try's end: `event` is its outcome (complete, failed, dead, aborted; retrying; requeued), the
        try ran `duration_s` (None: not at all) after waiting `queue_wait_s` from when it was due to its claim."""
        seen: Observation = []
        if function:
            count, duration_sum, wait_sum, name = self._fields_of(function, event)
            wait_s = max(0.0, queue_wait_s)
            seen += [(self._bucket("queue_wait", name, wait_s), 1), (wait_sum, wait_s)]
            if count is not None:
                seen.append((count, 1))
            if duration_s is not None and event != "requeued":
                seen += [(self._bucket("duration", name, duration_s), 1), (duration_sum, duration_s)]
        if event in job_metrics.OUTCOMES:
            bucket = now_ms // keys.THROUGHPUT_BUCKET_MS
            if self._finished[0] != bucket:
                self._finished = (bucket, (FINISHED, f"{self.queue_name}:{bucket}"))
            seen.append((self._finished[1], 1))
        counts = self.counts
        for delta, n in seen:
            counts[delta] = counts.get(delta, 0) + n
        return seen

    def forget(self, seen: Observation) -> None:
        for delta, n in seen:
            self.counts[delta] = self.counts.get(delta, 0) - n

    def due(self, alone: bool) -> bool:
        return alone or time.monotonic() - self.last_flush >= FLUSH_INTERVAL_S

    def take(self) -> tuple[str, dict[Delta, float]]:
        """Everything gathered, as the finish script's text (`<kind>\\t<field>\\t<n>` lines), and emptied."""
        taken, self.counts = self.counts, {}
        self.last_flush = time.monotonic()
        lines = [
            f"{kind}\t{name}\t{n:.6f}\n" if kind == SUM else f"{kind}\t{name}\t{int(n)}\n"
            for (kind, name), n in taken.items()
            if n
        ]
        return "".join(lines), taken

    def give_back(self, taken: dict[Delta, float]) -> None:
        """What a call that wrote nothing carried, for the next one."""
        for delta, n in taken.items():
            self.counts[delta] = self.counts.get(delta, 0) + n


async def flush_metrics(redis: ArqRedis, buffer: MetricsBuffer) -> None:
    """Hand over what no finish call carried (a stopping worker, or a second passed without a finish); kept for
    the next hand-over when Redis does not take it."""
    text, taken = buffer.take()
    if not text:
        return
    try:
        await scripts(redis).metrics(keys=[], args=[text])
    except BaseException:
        buffer.give_back(taken)
        raise
