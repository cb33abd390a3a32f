"""The worker's own mechanisms against a real Redis: lease renewal, claim paging, idempotent enqueue."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

import httpx
from arq.connections import ArqRedis
from core.claim import Claimer

from core import keys
from core.enqueue import JobRequest, _prepare, _script, enqueue
from core.registry import registry
from settings import Settings
from tests.conftest import build_worker


async def test_job_longer_than_its_lease_stays_with_its_worker(
    client: httpx.AsyncClient, settings: Settings, redis: ArqRedis
) -> None:
    """Two workers, a 2 s lease, a 4.5 s job: renewals keep the idle worker from claiming it again."""
    short_lease = settings.model_copy(update={"job_lease_seconds": 2})
    workers = [build_worker(short_lease) for _ in range(2)]
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


async def test_claim_pages_past_jobs_running_elsewhere(settings: Settings, redis: ArqRedis) -> None:
    spec = registry.get("echo")
    ids = [(await enqueue(redis, spec, {"value": n})).job_id for n in range(5)]
    for job_id in ids[:4]:  # the four oldest are running on other workers
        await redis.set(keys.in_progress(job_id), b"1", px=10_000)
    claimer = Claimer(redis, settings.queue_name, lease_s=10)
    claimed, _ = await claimer.claim(int(time.time() * 1000) + 1, want=1, scan=2)
    assert [job.job_id for job in claimed] == [ids[4]]
    assert claimed[0].job_try == 1 and claimed[0].payload is not None


async def test_retried_enqueue_of_the_same_payload_is_not_a_duplicate(settings: Settings, redis: ArqRedis) -> None:
    """A retry after a lost reply re-sends the identical script call: it must succeed, not answer 409."""
    request = JobRequest(registry.get("echo"), {"value": 1}, job_id="retried")
    script_keys, args, _ = _prepare(request, settings.queue_name, datetime.now(UTC), redis.expires_extra_ms)
    script = _script(redis)
    assert await script(keys=script_keys, args=args) == 1
    assert await script(keys=script_keys, args=args) == 1
    other_keys, other_args, _ = _prepare(
        JobRequest(registry.get("echo"), {"value": 2}, job_id="retried"),
        settings.queue_name,
        datetime.now(UTC),
        redis.expires_extra_ms,
    )
    assert await script(keys=other_keys, args=other_args) == 0
    assert await redis.zcard(settings.queue_name) == 1
