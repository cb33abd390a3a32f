"""A Redis outage: the API answers 503 with Retry-After instead of hanging or 500, stays live, and
recovers by itself once Redis is back, without a restart."""

from __future__ import annotations

import asyncio
from pathlib import Path

from core.embedded_redis import free_port, start_redis
from tests.conftest import api_client, make_settings

WELCOME = {"function": "send_welcome_email", "kwargs": {"email": "ada@example.com", "name": "Ada"}}


async def test_api_answers_503_while_redis_is_down_and_recovers_when_it_returns(tmp_path: Path) -> None:
    port = free_port()
    settings = make_settings(f"redis://127.0.0.1:{port}/0")
    async with api_client(settings) as client:
        enqueue = await client.post("/v1/jobs", json=WELCOME)
        assert enqueue.status_code == 503
        assert enqueue.headers["retry-after"].isdigit()
        assert "Redis" in enqueue.json()["detail"][0]["msg"]

        lookup = await client.get("/v1/jobs/x")
        assert lookup.status_code == 503
        assert "retry-after" in lookup.headers

        assert (await client.get("/health")).json() == {"status": "ok"}
        ready = await client.get("/ready")
        assert ready.status_code == 503
        assert ready.json()["redis"].startswith("unreachable")

        redis = start_redis(port, tmp_path / "redis", appendonly=False)
        try:
            recovered = await client.post("/v1/jobs", json=WELCOME)
            assert recovered.status_code == 202
            job_id = recovered.json()["job_id"]
            assert (await client.get(f"/v1/jobs/{job_id}")).json()["status"] == "queued"
            ready = await client.get("/ready")
            assert ready.status_code == 503
            assert ready.json() == {"status": "unavailable", "redis": "ok", "workers": 0}
        finally:
            redis.stop()


async def test_api_pool_is_bounded_and_waits_for_a_free_connection(settings, redis) -> None:
    """More concurrent requests than REDIS_MAX_CONNECTIONS wait for a connection instead of failing."""
    small = settings.model_copy(update={"redis_max_connections": 2})
    async with api_client(small) as client:
        job = {"function": "echo", "kwargs": {"value": 1}}
        responses = await asyncio.gather(*(client.post("/v1/jobs", json=job) for _ in range(40)))
        assert [r.status_code for r in responses] == [202] * 40
    assert await redis.zcard("arq:queue") == 40
