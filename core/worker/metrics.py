"""The worker's share of the cluster-wide job metrics (core/job_metrics.py) and of its queue's throughput, carried
to Redis by the finish script it calls anyway: no round trip of their own.

Under load a worker gathers them here and hands them to one finish call a second, so they cost a few Redis
commands a second instead of four per job; a worker whose job is the only one running hands them over at once,
so an idle worker's figures are never behind. The finish script applies them only when it writes its outcome (a
stale copy's call changes nothing, so what it carried is kept for the next one).
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field

from arq.connections import ArqRedis

from core import job_metrics, keys
from core.scripts import scripts

FLUSH_INTERVAL_S = 1.0
# Kinds of a delta (the first column of a line the finish script reads): a counter, a histogram bucket, a
# histogram sum (float), jobs ended in a throughput bucket.
COUNT, BUCKET, SUM, FINISHED = "C", "H", "F", "T"

Delta = tuple[str, str]  # (kind, field)


@dataclass
class Observation:
    """What one try's end adds; kept so that a write that did not happen can take it back."""

    deltas: Counter[Delta] = field(default_factory=Counter)
    sums: dict[Delta, float] = field(default_factory=dict)


@dataclass
class MetricsBuffer:
    queue_name: str
    counts: Counter[Delta] = field(default_factory=Counter)
    sums: Counter[Delta] = field(default_factory=Counter)
    last_flush: float = field(default_factory=time.monotonic)

    def observe(
        self, function: str, event: str, duration_s: float | None, queue_wait_s: float, now_ms: int
    ) -> Observation:
        """Add one try's end: `event` is its outcome (complete, failed, dead, aborted; retrying; requeued), the
        try ran `duration_s` (None: not at all) after waiting `queue_wait_s` from when it was due to its claim."""
        seen = Observation()
        if function:
            wait_s = max(0.0, queue_wait_s)
            seen.deltas[(BUCKET, f"queue_wait|{function}|{job_metrics.bucket_index(wait_s)}")] += 1
            seen.sums[(SUM, f"queue_wait|{function}|sum")] = wait_s
            if event == "retrying":
                seen.deltas[(COUNT, f"retried|{function}")] += 1
            elif event in job_metrics.OUTCOMES:
                seen.deltas[(COUNT, f"finished|{function}|{event}")] += 1
            if duration_s is not None and event != "requeued":
                seen.deltas[(BUCKET, f"duration|{function}|{job_metrics.bucket_index(duration_s)}")] += 1
                seen.sums[(SUM, f"duration|{function}|sum")] = duration_s
        if event in job_metrics.OUTCOMES:
            seen.deltas[(FINISHED, f"{self.queue_name}:{now_ms // keys.THROUGHPUT_BUCKET_MS}")] += 1
        self.counts.update(seen.deltas)
        self.sums.update(seen.sums)
        return seen

    def forget(self, seen: Observation) -> None:
        self.counts.subtract(seen.deltas)
        self.sums.subtract(seen.sums)

    def due(self, alone: bool) -> bool:
        return alone or time.monotonic() - self.last_flush >= FLUSH_INTERVAL_S

    def take(self) -> tuple[str, Counter[Delta], Counter[Delta]]:
        """Everything gathered, as the finish script's text (`<kind>\\t<field>\\t<n>` lines), and emptied."""
        counts, sums = +self.counts, Counter({key: value for key, value in self.sums.items() if value})
        self.counts, self.sums = Counter(), Counter()
        self.last_flush = time.monotonic()
        lines = [f"{kind}\t{name}\t{n}\n" for (kind, name), n in counts.items()]
        lines += [f"{kind}\t{name}\t{value:.6f}\n" for (kind, name), value in sums.items()]
        return "".join(lines), counts, sums

    def give_back(self, counts: Counter[Delta], sums: Counter[Delta]) -> None:
        """What a call that wrote nothing carried, for the next one."""
        self.counts.update(counts)
        self.sums.update(sums)


async def flush_metrics(redis: ArqRedis, buffer: MetricsBuffer) -> None:
    """Hand over what is left without a finish call to carry it (a stopping worker)."""
    text, _, _ = buffer.take()
    if text:
        await scripts(redis).metrics(keys=[], args=[text])
