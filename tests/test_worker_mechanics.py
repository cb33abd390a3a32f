"""The worker's own mechanisms against a real Redis: lease renewal, claim paging, idempotent enqueue."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

import httpx
from arq.connections import ArqRedis

from core import codec, keys, wire
from core.enqueue import JobRequest, _prepare, _write, enqueue_many
from core.registry import Registry
from core.worker.claim import PAGE, claim
from settings import Settings
from tests.conftest import build_worker
from tests.support.waiting import wait_for


async def test_job_longer_than_its_lease_stays_with_its_worker(
    client: httpx.AsyncClient, settings: Settings, registry: Registry, redis: ArqRedis
) -> None:
    """Two workers, a 2 s lease, a 4.5 s job: renewals keep the idle worker from claiming it again."""
    short_lease = settings.model_copy(update={"job_lease_seconds": 2})
    workers = [build_worker(short_lease, registry) for _ in range(2)]
    tasks = [asyncio.create_task(w.async_run()) for w in workers]
    try:
        body = {"function": "count_starts", "kwargs": {"token": "long", "seconds": 4.5}}
        job_id = (await client.post("/v1/jobs", json=body)).json()["job_id"]
        outcome = (await client.get(f"/v1/jobs/{job_id}/result", params={"wait": 15})).json()
        assert outcome["status"] == "complete"
        # Without renewals the idle worker would have started it again 2 s in, long before it finished.
        assert await redis.get("test:starts:long") == b"1"
    finally:
        for worker in workers:
            worker.handle_sig(2)
        await asyncio.gather(*tasks, return_exceptions=True)
        for worker in workers:
            await worker.close()


async def enqueue_running_elsewhere(redis: ArqRedis, registry: Registry, total: int, running: int) -> list[str]:
    """`total` due echo jobs in queue order (one score, ids in order); the first `running` are held by other
    workers (any lease value means held)."""
    ids = [f"job-{n:03d}" for n in range(total)]
    await enqueue_many(redis, [JobRequest(registry.get("echo"), {"value": n}, job_id=i) for n, i in enumerate(ids)])
    for job_id in ids[:running]:
        await redis.set(keys.in_progress(job_id), b"1", px=10_000)
    return ids


async def test_claim_pages_past_jobs_running_elsewhere(settings: Settings, registry: Registry, redis: ArqRedis) -> None:
    # More running jobs than one page of due ids (PAGE): the claim has to read a second page to find a free one.
    ids = await enqueue_running_elsewhere(redis, registry, PAGE + 5, running=PAGE + 2)
    now_ms = int(time.time() * 1000) + 1
    claimed, _ = await claim(redis, settings.queue_name, "worker-a", now_ms, 1, 2 * PAGE, 10_000)
    assert [job.job_id for job in claimed] == [ids[PAGE + 2]]
    [held] = claimed
    assert held.job_try == 1 and held.payload is not None and not held.aborted
    assert held.token.startswith(f"worker-a:{now_ms}:") and held.started_ms == now_ms
    assert await redis.get(keys.in_progress(held.job_id)) == held.token.encode()
    assert 0 < await redis.pttl(keys.in_progress(held.job_id)) <= 10_000
    assert wire.decode_job(held.payload, codec.loads).kwargs == {"value": PAGE + 2}
    assert {await redis.get(keys.in_progress(job_id)) for job_id in ids[: PAGE + 2]} == {b"1"}  # left alone


async def test_claim_reads_no_further_than_its_read_limit(
    settings: Settings, registry: Registry, redis: ArqRedis
) -> None:
    ids = await enqueue_running_elsewhere(redis, registry, PAGE + 5, running=PAGE + 2)
    now_ms = int(time.time() * 1000) + 1
    claimed, _ = await claim(redis, settings.queue_name, "worker-a", now_ms, 1, PAGE + 2, 10_000)
    assert claimed == []
    assert await redis.exists(keys.in_progress(ids[PAGE + 2]), keys.retry(ids[PAGE + 2])) == 0


async def test_retried_enqueue_of_the_same_payload_is_not_a_duplicate(
    settings: Settings, registry: Registry, redis: ArqRedis
) -> None:
    """A retry after a lost reply re-sends the identical script call: it must succeed, not answer 409."""
    request = JobRequest(registry.get("echo"), {"value": 1}, job_id="retried")
    prepared = _prepare(request, datetime.now(UTC), redis.expires_extra_ms)
    assert await _write(redis, settings.queue_name, [prepared]) == [True]
    assert await _write(redis, settings.queue_name, [prepared]) == [True]
    other = _prepare(
        JobRequest(registry.get("echo"), {"value": 2}, job_id="retried"), datetime.now(UTC), redis.expires_extra_ms
    )
    assert await _write(redis, settings.queue_name, [other]) == [False]
    assert await redis.zcard(settings.queue_name) == 1
    assert await redis.get(keys.job("retried")) == prepared.payload


async def test_stopping_worker_requeues_its_running_job_with_the_try_given_back(
    client: httpx.AsyncClient, settings: Settings, registry: Registry, redis: ArqRedis
) -> None:
    worker = build_worker(settings, registry)
    task = asyncio.create_task(worker.async_run())
    body = {"function": "count_starts", "kwargs": {"token": "stopped", "seconds": 30}}
    job_id = (await client.post("/v1/jobs", json=body)).json()["job_id"]
    try:
        await wait_for(lambda: client.get(f"/v1/jobs/{job_id}"), lambda r: r.json()["status"] == "in_progress")
    finally:
        worker.handle_sig(2)
        await asyncio.gather(task, return_exceptions=True)
        await worker.close()
    assert worker.jobs_retried == 1 and worker.jobs_failed == 0
    view = (await client.get(f"/v1/jobs/{job_id}")).json()
    assert view["status"] == "queued" and view["tries"] == 0 and view["started_at"] is None
    assert view["attempts"] == [] and view["error"] is None
    assert await redis.exists(keys.in_progress(job_id)) == 0
    [held], _ = await claim(redis, settings.queue_name, "worker-b", int(time.time() * 1000), 1, 10, 10_000)
    assert (held.job_id, held.job_try) == (job_id, 1)  # the stopped try did not count
