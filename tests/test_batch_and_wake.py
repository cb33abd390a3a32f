"""Batch enqueue, and a worker that wakes on new and due jobs instead of waiting out its poll delay."""

from __future__ import annotations

import asyncio
import time

import httpx
from arq.connections import ArqRedis

from core.registry import Registry
from settings import Settings
from tests.conftest import build_worker
from tests.support.waiting import wait_for

WELCOME = {"function": "send_welcome_email", "kwargs": {"email": "ada@example.com", "name": "Ada"}}


async def test_batch_enqueue_queues_every_job(client: httpx.AsyncClient, redis: ArqRedis, run_burst_worker) -> None:
    jobs = [{"function": "echo", "kwargs": {"value": n}} for n in range(50)]
    response = await client.post("/v1/jobs/batch", json={"jobs": jobs})
    assert response.status_code == 202
    accepted = response.json()["accepted"]
    assert len(accepted) == 50 and response.json()["duplicates"] == []
    assert await redis.zcard("arq:queue") == 50
    worker = await run_burst_worker()
    assert worker.jobs_complete == 50
    outcome = (await client.get(f"/v1/jobs/{accepted[7]['job_id']}/result")).json()
    assert outcome["result"] == 7


async def test_batch_with_one_invalid_job_writes_nothing(client: httpx.AsyncClient, redis: ArqRedis) -> None:
    bad = {"function": "send_welcome_email", "kwargs": {"email": "nope", "name": "x"}}
    response = await client.post("/v1/jobs/batch", json={"jobs": [WELCOME, bad]})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "jobs", 1, "kwargs", "email"]
    unknown = await client.post("/v1/jobs/batch", json={"jobs": [{"function": "nope"}]})
    assert unknown.status_code == 422
    assert unknown.json()["detail"][0]["loc"] == ["body", "jobs", 0, "function"]
    assert await redis.zcard("arq:queue") == 0


async def test_batch_reports_every_invalid_job_at_once(client: httpx.AsyncClient, redis: ArqRedis) -> None:
    jobs = [
        {"function": "send_welcome_email", "kwargs": {"email": "nope", "name": "x"}},
        WELCOME,
        {"function": "nope"},
        {"function": "echo", "kwargs": {"value": 2**64}},
        {"function": "send_welcome_email", "kwargs": {"email": "ada@example.com"}},
    ]
    response = await client.post("/v1/jobs/batch", json={"jobs": jobs})
    assert response.status_code == 422
    found = [(e["loc"], e["type"]) for e in response.json()["detail"]]
    assert found == [
        (["body", "jobs", 0, "kwargs", "email"], "value_error"),
        (["body", "jobs", 2, "function"], "unknown_function"),
        (["body", "jobs", 3, "kwargs", "value"], "not_exact_json"),
        (["body", "jobs", 4, "kwargs", "name"], "missing"),
    ]
    assert await redis.zcard("arq:queue") == 0


async def test_batch_giving_a_job_id_twice_queues_it_once_and_lists_the_repeat_as_a_duplicate(
    client: httpx.AsyncClient, redis: ArqRedis
) -> None:
    """The same id is the same job, as for an id that already exists (and as the published schema can say:
    JSON Schema has no "unique by one property", so a 422 would refuse a body the document calls valid)."""
    jobs = [{**WELCOME, "job_id": "twice"}, WELCOME, {**WELCOME, "job_id": "twice"}]
    response = await client.post("/v1/jobs/batch", json={"jobs": jobs})
    assert response.status_code == 202, response.text
    assert response.json()["duplicates"] == ["twice"]
    assert response.json()["accepted"][0]["job_id"] == "twice"
    assert len(response.json()["accepted"]) == 2
    assert await redis.zcard("arq:queue") == 2
    again = await client.post("/v1/jobs/batch", json={"jobs": [{**WELCOME, "job_id": "twice"}] * 2})
    assert again.json() == {"accepted": [], "duplicates": ["twice", "twice"]}


async def test_batch_reports_existing_ids_and_queues_the_rest(client: httpx.AsyncClient) -> None:
    await client.post("/v1/jobs", json={**WELCOME, "job_id": "taken"})
    response = await client.post("/v1/jobs/batch", json={"jobs": [{**WELCOME, "job_id": "taken"}, WELCOME]})
    assert response.status_code == 202
    assert response.json()["duplicates"] == ["taken"]
    assert len(response.json()["accepted"]) == 1
    assert (await client.post("/v1/jobs/batch", json={"jobs": []})).status_code == 422


async def test_idle_worker_wakes_on_enqueue_not_on_its_poll_delay(
    client: httpx.AsyncClient, settings: Settings, registry: Registry, redis: ArqRedis
) -> None:
    slow_poll = settings.model_copy(update={"poll_delay_seconds": 5})
    worker = build_worker(slow_poll, registry, poll_delay=5)
    task = asyncio.create_task(worker.async_run())
    try:
        await wait_for(lambda: redis.zcard("platform:workers"), lambda n: n >= 1)
        await asyncio.sleep(0.2)  # let the worker settle into its (5 s) sleep on the wake list
        sent = time.monotonic()
        job_id = (await client.post("/v1/jobs", json={"function": "echo", "kwargs": {"value": 1}})).json()["job_id"]
        outcome = (await client.get(f"/v1/jobs/{job_id}/result", params={"wait": 4})).json()
        assert outcome["status"] == "complete"
        assert time.monotonic() - sent < 2.5  # without the wake token it would wait out the 5 s sleep

        deferred = await client.post("/v1/jobs", json={"function": "echo", "kwargs": {"value": 2}, "defer_by": 1})
        sent = time.monotonic()
        outcome = (await client.get(f"/v1/jobs/{deferred.json()['job_id']}/result", params={"wait": 4})).json()
        assert outcome["status"] == "complete"
        assert 1.0 <= time.monotonic() - sent < 2.5  # it slept until the deferred job came due, not 5 s
    finally:
        worker.handle_sig(2)
        await asyncio.gather(task, return_exceptions=True)
        await worker.close()
