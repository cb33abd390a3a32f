"""`core.worker.metrics`: job metrics ride on finish calls and are applied only by a call that writes; what a
stale call carried is kept for the next one; a stopping worker hands over the rest."""

from __future__ import annotations

import asyncio
import time

from arq.connections import ArqRedis

from core import job_metrics, keys
from core.enqueue import enqueue
from core.registry import Registry
from core.worker.claim import claim
from core.worker.metrics import MetricsBuffer, flush_metrics
from core.worker.outcome import Succeeded
from core.worker.record import Ran, Storage, write
from core.worker.worker import PlatformWorker
from settings import Settings

QUEUE = "arq:queue"
KEEP = Storage(result_px=60_000, keep_lease_px=None, dead_letter_px=None)


async def counts(redis: ArqRedis) -> dict[str, int]:
    return {"|".join(key): n for key, n in (await job_metrics.read(redis)).counts.items()}


async def test_metrics_are_applied_only_by_a_call_that_writes(
    settings: Settings, redis: ArqRedis, registry: Registry
) -> None:
    job_id = (await enqueue(redis, registry.get("echo"), {"value": 1})).job_id
    now_ms = int(time.time() * 1000)
    (stale,), _ = await claim(redis, QUEUE, "frozen", now_ms, 10, 100, 50)
    await redis.delete(keys.in_progress(job_id))
    (current,), _ = await claim(redis, QUEUE, "other", now_ms + 1, 10, 100, 10_000)
    buffer = MetricsBuffer(QUEUE)

    buffer.observe("echo", "complete", 0.02, 0.5, now_ms)
    text, carried = buffer.take()
    assert await write(redis, QUEUE, stale, Succeeded(b"{}"), KEEP, Ran("echo", text)) is False
    assert await counts(redis) == {"enqueued|echo": 1}  # the stale call applied nothing
    buffer.give_back(carried)

    buffer.observe("echo", "complete", 0.03, 0.5, now_ms)
    text, _ = buffer.take()
    assert await write(redis, QUEUE, current, Succeeded(b"{}"), KEEP, Ran("echo", text)) is True
    metrics = await job_metrics.read(redis)
    assert await counts(redis) == {"enqueued|echo": 1, "finished|echo|complete": 2}
    duration = metrics.histograms[("duration", "echo")]
    assert duration.count == 2 and abs(duration.sum - 0.05) < 1e-6
    assert duration.buckets[job_metrics.bucket_index(0.02)] == 1
    assert metrics.histograms[("queue_wait", "echo")].count == 2
    assert await redis.get(keys.throughput(QUEUE, now_ms // keys.THROUGHPUT_BUCKET_MS)) == b"2"
    assert 0 < await redis.ttl(keys.throughput(QUEUE, now_ms // keys.THROUGHPUT_BUCKET_MS)) <= keys.THROUGHPUT_TTL_S


async def test_a_stopping_worker_hands_over_what_no_finish_carried(settings: Settings, redis: ArqRedis) -> None:
    buffer = MetricsBuffer(QUEUE)
    buffer.observe("echo", "retrying", 0.01, 0.0, int(time.time() * 1000))
    await flush_metrics(redis, buffer)
    assert await counts(redis) == {"retried|echo": 1}
    await flush_metrics(redis, buffer)  # nothing left: nothing more
    assert await counts(redis) == {"retried|echo": 1}


def test_a_busy_worker_hands_metrics_over_once_a_second_an_idle_one_at_once() -> None:
    buffer = MetricsBuffer(QUEUE)
    assert buffer.due(alone=True)
    assert not buffer.due(alone=False)
    buffer.last_flush -= 1.5
    assert buffer.due(alone=False)


async def test_a_burst_is_counted_in_full_while_the_worker_stays_up(
    settings: Settings, redis: ArqRedis, registry: Registry, running_worker: PlatformWorker
) -> None:
    """Jobs that end together hand their metrics to no finish call of their own; the worker's loop hands over
    the rest within a second or so, not at its next job or its stop."""
    spec = registry.get("sleep_for")
    for _ in range(20):
        await enqueue(redis, spec, {"seconds": 0.2})
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if (await counts(redis)).get("finished|sleep_for|complete") == 20:
            break
        await asyncio.sleep(0.05)
    assert (await counts(redis)).get("finished|sleep_for|complete") == 20
    assert not running_worker.metrics.counts or not any(running_worker.metrics.counts.values())
