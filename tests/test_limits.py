"""`service/limits.py`: a per-key rate shared through Redis by every API process (429 + Retry-After), and
a per-key cap on open result waits."""

from __future__ import annotations

import asyncio

import httpx
from arq.connections import ArqRedis

from tests.conftest import make_settings
from tests.support.keys import ENQUEUE_KEY, ENQUEUER, READ_KEY, READER, bearer
from tests.test_auth import client_for

WELCOME = {"function": "send_welcome_email", "kwargs": {"email": "ada@example.com", "name": "Ada"}}


async def test_rate_limit_is_429_with_retry_after(redis_server, redis: ArqRedis) -> None:
    settings = make_settings(redis_server.url, api_keys=[ENQUEUER, READER], rate_limit_per_minute=5)
    async with client_for(settings) as client:
        statuses = [
            (await client.post("/v1/jobs", json=WELCOME, headers=bearer(ENQUEUE_KEY))).status_code for _ in range(7)
        ]
        refused = await client.post("/v1/jobs", json=WELCOME, headers=bearer(ENQUEUE_KEY))
        other_key = await client.get("/v1/queues", headers=bearer(READ_KEY))
        health = await client.get("/health")
    assert statuses == [202] * 5 + [429] * 2
    assert refused.status_code == 429
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert refused.json()["detail"][0]["type"] == "rate_limited"
    assert other_key.status_code == 200  # per key
    assert health.status_code == 200  # the open routes are not limited
    assert await redis.zcard("arq:queue") == 5


async def test_rate_limit_holds_across_api_processes(redis_server, redis: ArqRedis) -> None:
    settings = make_settings(redis_server.url, api_keys=[ENQUEUER], rate_limit_per_minute=6)
    async with client_for(settings) as first, client_for(settings) as second:
        statuses = []
        for index in range(10):  # alternate between two API instances sharing one Redis
            client = first if index % 2 == 0 else second
            statuses.append((await client.post("/v1/jobs", json=WELCOME, headers=bearer(ENQUEUE_KEY))).status_code)
    assert statuses.count(202) == 6
    assert statuses[6:] == [429] * 4
    assert await redis.zcard("arq:queue") == 6


async def test_concurrent_result_waits_are_capped_per_key(redis_server, redis: ArqRedis) -> None:
    settings = make_settings(redis_server.url, api_keys=[ENQUEUER, READER], max_waits_per_key=2)
    async with client_for(settings) as client:
        job_id = (await client.post("/v1/jobs", json=WELCOME, headers=bearer(ENQUEUE_KEY))).json()["job_id"]

        async def wait(seconds: float) -> httpx.Response:
            path = f"/v1/jobs/{job_id}/result"
            return await client.get(path, params={"wait": seconds}, headers=bearer(READ_KEY))

        # No worker runs, so each wait lasts its full 2 s: three at once, and one of them is over the cap.
        answers = await asyncio.gather(wait(2), wait(2), wait(2))
        not_waiting = await client.get(f"/v1/jobs/{job_id}/result", headers=bearer(READ_KEY))
        after = await wait(0.1)
    statuses = sorted(r.status_code for r in answers)
    assert statuses == [202, 202, 429]
    refused = next(r for r in answers if r.status_code == 429)
    assert refused.headers.get("retry-after") == "1"
    assert refused.json()["detail"][0]["type"] == "too_many_waits"
    assert not_waiting.status_code == 202  # a plain read takes no slot
    assert after.status_code == 202  # slots are given back
