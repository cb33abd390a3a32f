"""Job events: every change of a job's state is published once, in order, with its data, by the script that makes
the change, to the platform-wide stream and (same entry id) to the job's own stream; a stale write publishes
nothing, and a refused batch publishes nothing."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from arq.connections import ArqRedis

from core import events, keys
from core.codec import ErrorKind, JobError
from core.enqueue import enqueue, enqueue_tick
from core.events import EventName
from core.registry import Registry
from core.worker.claim import claim
from core.worker.outcome import Failed, Requeued, Retrying, Succeeded
from core.worker.record import Ran, Storage, write
from tests.support.waiting import wait_for

QUEUE = "arq:queue"
KEEP = Storage(result_px=60_000, keep_lease_px=None, dead_letter_px=None)


async def job_events(redis: ArqRedis, job_id: str) -> list[events.Event]:
    entries = await redis.xrange(events.job_stream(job_id))
    parsed = [events.parse(entry_id, fields) for entry_id, fields in entries]
    assert all(event is not None for event in parsed)
    return [event for event in parsed if event is not None]


async def names(redis: ArqRedis, job_id: str) -> list[str]:
    return [event.event.value for event in await job_events(redis, job_id)]


async def global_events(redis: ArqRedis, job_id: str) -> list[events.Event]:
    entries = await redis.xrange(events.STREAM)
    parsed = [events.parse(entry_id, fields) for entry_id, fields in entries]
    return [event for event in parsed if event is not None and event.job_id == job_id]


async def post(client: httpx.AsyncClient, function: str, **body: Any) -> str:
    response = await client.post("/v1/jobs", json={"function": function, **body})
    assert response.status_code == 202, response.text
    return str(response.json()["job_id"])


async def test_a_job_that_completes_publishes_queued_started_complete(
    client: httpx.AsyncClient, redis: ArqRedis, run_burst_worker
) -> None:
    before_ms = int(time.time() * 1000)
    job_id = await post(client, "echo", kwargs={"value": 7})
    await run_burst_worker()

    published = await job_events(redis, job_id)
    assert [e.event for e in published] == [EventName.queued, EventName.started, EventName.complete]
    assert all(e.job_id == job_id and e.function == "echo" for e in published)
    queued, started, complete = published
    assert before_ms <= queued.data["scheduled_at"] <= int(time.time() * 1000)
    assert queued.data["enqueued_at"] == queued.data["scheduled_at"]
    assert started.data == {"try": 1} and complete.data == {"try": 1}
    # The platform-wide stream has the same entries under the same ids.
    assert [(e.id, e.event, e.data) for e in await global_events(redis, job_id)] == [
        (e.id, e.event, e.data) for e in published
    ]
    # The job's stream lives as long as its result.
    result_ttl, events_ttl = await redis.pttl(keys.result(job_id)), await redis.pttl(events.job_stream(job_id))
    assert events_ttl > 0 and abs(events_ttl - result_ttl) < 5_000


async def test_a_retried_job_publishes_each_try(client: httpx.AsyncClient, redis: ArqRedis, run_burst_worker) -> None:
    job_id = await post(client, "fail_then_succeed", kwargs={"failures": 1})
    await run_burst_worker()

    published = await job_events(redis, job_id)
    assert [e.event.value for e in published] == ["queued", "started", "retrying", "started", "complete"]
    retrying = published[2]
    assert retrying.data["try"] == 1
    assert retrying.data["error"] == {"type": "ConnectionError", "message": "try 1 failed", "kind": "exception"}
    assert retrying.data["retry_at"] >= int(retrying.id.split("-")[0]) + 250  # the policy's 0.3 s delay
    assert published[3].data == {"try": 2} and published[4].data == {"try": 2}


async def test_a_dead_job_and_its_requeue_are_published(
    client: httpx.AsyncClient, redis: ArqRedis, run_burst_worker
) -> None:
    job_id = await post(client, "fail_always", kwargs={"message": "boom"})
    await run_burst_worker()
    published = await job_events(redis, job_id)
    assert [e.event.value for e in published] == ["queued", "started", "dead"]
    assert published[2].data == {"try": 1, "error": {"type": "ValueError", "message": "boom", "kind": "exception"}}

    response = await client.post("/v1/dead/requeue", json={"job_ids": [job_id]})
    assert response.json()["requeued"] == [job_id]
    requeued = (await job_events(redis, job_id))[-1]
    assert requeued.event is EventName.requeued and requeued.data["scheduled_at"] <= int(time.time() * 1000)
    await run_burst_worker()
    assert await names(redis, job_id) == ["queued", "started", "dead", "requeued", "started", "dead"]


async def test_a_deferred_job_aborted_before_it_runs(client: httpx.AsyncClient, redis: ArqRedis) -> None:
    job_id = await post(client, "echo", kwargs={"value": 1}, defer_by=60)
    (deferred,) = await job_events(redis, job_id)
    assert deferred.event is EventName.deferred
    assert deferred.data["scheduled_at"] >= int(time.time() * 1000) + 55_000

    assert (await client.post(f"/v1/jobs/{job_id}/abort")).status_code == 200
    assert await names(redis, job_id) == ["deferred", "aborted"]
    assert (await client.post(f"/v1/jobs/{job_id}/abort")).status_code == 409
    assert await names(redis, job_id) == ["deferred", "aborted"]  # nothing changed, nothing published


async def test_a_running_job_aborted_ends_through_its_worker(
    client: httpx.AsyncClient, redis: ArqRedis, running_worker
) -> None:
    job_id = await post(client, "sleep_for", kwargs={"seconds": 30})
    await wait_for(lambda: names(redis, job_id), lambda seen: "started" in seen)
    assert (await client.post(f"/v1/jobs/{job_id}/abort")).status_code in (200, 202)
    await wait_for(lambda: names(redis, job_id), lambda seen: seen[-1] == "aborted")
    assert await names(redis, job_id) == ["queued", "started", "aborted"]


async def test_progress_is_published_as_it_is_reported(
    client: httpx.AsyncClient, redis: ArqRedis, run_burst_worker
) -> None:
    job_id = await post(client, "generate_report", kwargs={"report_id": "r1", "rows": 20})
    await run_burst_worker()
    published = await job_events(redis, job_id)
    assert [e.event.value for e in published] == ["queued", "started", *["progress"] * 10, "complete"]
    assert published[2].data == {"done": 2, "total": 20, "percent": 10.0, "message": "2 of 20 rows"}
    assert published[11].data["percent"] == 100.0


async def test_a_stale_finish_publishes_nothing(settings, redis: ArqRedis, registry: Registry) -> None:
    accepted = await enqueue(redis, registry.get("echo"), {"value": 1})
    job_id = accepted.job_id
    now_ms = int(time.time() * 1000)
    (stale,), _ = await claim(redis, QUEUE, "frozen", now_ms, 10, 100, 50)
    await redis.delete(keys.in_progress(job_id))  # its lease lapsed and another worker claimed the job
    (current,), _ = await claim(redis, QUEUE, "other", now_ms + 1, 10, 100, 10_000)
    assert await names(redis, job_id) == ["queued", "started", "started"]

    ran = Ran("echo")
    error = JobError.of_kind(ErrorKind.exception, "x")
    for outcome in (Succeeded(b"{}"), Retrying(0, None, error), Requeued(), Failed(error, b"{}", None, None)):
        assert await write(redis, QUEUE, stale, outcome, KEEP, ran) is False
    assert await names(redis, job_id) == ["queued", "started", "started"]
    assert await write(redis, QUEUE, current, Succeeded(b"{}"), KEEP, ran) is True
    assert await names(redis, job_id) == ["queued", "started", "started", "complete"]
    assert await write(redis, QUEUE, stale, Succeeded(b"{}"), KEEP, ran) is False
    assert await names(redis, job_id) == ["queued", "started", "started", "complete"]


async def test_a_batch_publishes_each_job_written_and_none_of_a_duplicate(
    client: httpx.AsyncClient, redis: ArqRedis
) -> None:
    await post(client, "echo", kwargs={"value": 0}, job_id="taken")
    body = {
        "jobs": [
            {"function": "echo", "kwargs": {"value": 1}, "job_id": "b1"},
            {"function": "echo", "kwargs": {"value": 2}, "job_id": "taken"},
            {"function": "sleep_for", "kwargs": {"seconds": 1}, "job_id": "b3", "defer_by": 30},
        ]
    }
    response = await client.post("/v1/jobs/batch", json=body)
    assert response.status_code == 202, response.text
    assert await names(redis, "b1") == ["queued"]
    assert await names(redis, "taken") == ["queued"]  # the first enqueue's only
    assert await names(redis, "b3") == ["deferred"]


async def test_a_refused_batch_publishes_nothing(client: httpx.AsyncClient, redis: ArqRedis) -> None:
    before = await redis.xlen(events.STREAM) if await redis.exists(events.STREAM) else 0
    await redis.config_set("maxmemory", 1)
    try:
        body = {"jobs": [{"function": "echo", "kwargs": {"value": n}} for n in range(3)]}
        response = await client.post("/v1/jobs/batch", json=body)
    finally:
        await redis.config_set("maxmemory", 0)
    assert response.status_code == 503
    assert (await redis.xlen(events.STREAM) if await redis.exists(events.STREAM) else 0) == before
    assert await redis.zcard(QUEUE) == 0


async def test_a_cron_tick_is_enqueued_through_the_enqueue_script(redis: ArqRedis) -> None:
    due = datetime.now(UTC) + timedelta(seconds=30)
    assert await enqueue_tick(redis, QUEUE, "record_heartbeat", "tick-1", due) is True
    # One tick, one job: a second worker's enqueue of the same tick writes nothing (within the same millisecond
    # its payload is identical, and the script answers it as a retry of the first).
    await enqueue_tick(redis, QUEUE, "record_heartbeat", "tick-1", due)
    assert await redis.zcard(QUEUE) == 1
    (deferred,) = await job_events(redis, "tick-1")
    assert deferred.event is EventName.deferred and deferred.function == "record_heartbeat"
    assert deferred.data["scheduled_at"] == int(due.timestamp() * 1000)
