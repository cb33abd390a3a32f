"""`service/errors.py`: every Redis error that reaches the API is a 503 with Retry-After, not a 500."""

from __future__ import annotations

import httpx
from arq.connections import ArqRedis

WELCOME = {"function": "send_welcome_email", "kwargs": {"email": "ada@example.com", "name": "Ada"}}


async def test_full_redis_is_503_with_retry_after(client: httpx.AsyncClient, redis: ArqRedis) -> None:
    # The session's Redis runs with `noeviction`: over maxmemory every write fails with OOM.
    await redis.config_set("maxmemory", 1)
    try:
        response = await client.post("/v1/jobs", json=WELCOME)
    finally:
        await redis.config_set("maxmemory", 0)
    assert response.status_code == 503
    assert response.headers["retry-after"].isdigit()
    assert "OutOfMemoryError" in response.json()["detail"][0]["msg"]
