"""A user's app that mounts the platform gets the standalone app's guard on the platform's routes (keys and
scopes, Host, body limits, JSON only, strict input, security headers) without wiring anything, and the app's
own routes are left as the app made them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
from arq.connections import ArqRedis
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from core.registry import Registry
from service import Platform
from settings import Settings
from tests.conftest import make_settings
from tests.support.keys import ADMIN, ADMIN_KEY, ENQUEUE_KEY, ENQUEUER, READ_KEY, READER, bearer

ECHO = {"function": "echo", "kwargs": {"value": 1}}


def users_app(settings: Settings, registry: Registry, flat: bool) -> FastAPI:
    """The README's quick start: the platform's lifespan and router, and a route of the app's own."""
    platform = Platform(settings, registry)
    app = FastAPI(lifespan=platform.lifespan())
    if flat:
        platform.include_in(app)
    else:
        app.include_router(platform.router)

    @app.post("/mine")
    async def mine(payload: dict[str, int] | None = None) -> dict[str, str]:
        return {"who": "the app's own route"}

    return app


@asynccontextmanager
async def serve(app: FastAPI, host: str = "platform.test") -> AsyncIterator[httpx.AsyncClient]:
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app, client=("203.0.113.7", 40000))
        async with httpx.AsyncClient(transport=transport, base_url=f"http://{host}") as client:
            yield client


@pytest.fixture(params=["include_router", "include_in"])
async def mounted(redis_server, redis: ArqRedis, registry: Registry, request) -> AsyncIterator[httpx.AsyncClient]:
    settings = make_settings(redis_server.url, api_keys=[ADMIN, ENQUEUER, READER], max_request_bytes=4096)
    async with serve(users_app(settings, registry, flat=request.param == "include_in")) as client:
        yield client


async def test_platform_routes_need_a_key_and_its_scope(mounted: httpx.AsyncClient, redis: ArqRedis) -> None:
    missing = await mounted.post("/v1/jobs", json=ECHO)
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"] == "Bearer"
    assert (await mounted.get("/v1/queues", headers=bearer("jp_wrong"))).status_code == 401
    assert (await mounted.post("/v1/jobs", json=ECHO, headers=bearer(READ_KEY))).status_code == 403
    assert (
        await mounted.post("/v1/functions/echo/jobs", json={"value": 1}, headers=bearer(READ_KEY))
    ).status_code == 403
    assert (await mounted.post("/v1/jobs/x/abort", headers=bearer(ENQUEUE_KEY))).status_code == 403
    assert (await mounted.post("/v1/jobs", json=ECHO, headers={"X-API-Key": ENQUEUE_KEY})).status_code == 202
    assert (await mounted.get("/v1/queues", headers=bearer(READ_KEY))).status_code == 200
    assert (await mounted.get("/health")).status_code == 200  # open, as in the standalone app
    assert await redis.zcard("arq:queue") == 1


async def test_platform_routes_limit_and_parse_bodies_strictly(mounted: httpx.AsyncClient, redis: ArqRedis) -> None:
    admin = bearer(ADMIN_KEY)
    huge = await mounted.post(
        "/v1/jobs", content=b"[" + b"1," * 100_000 + b"1]", headers=admin | {"Content-Type": "application/json"}
    )
    assert huge.status_code == 413

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(1000):
            yield b" " * 1024

    chunked = await mounted.post("/v1/jobs", content=chunks(), headers=admin | {"Content-Type": "application/json"})
    assert chunked.status_code == 413
    text = await mounted.post(
        "/v1/jobs", content=b'{"function": "echo"}', headers=admin | {"Content-Type": "text/plain"}
    )
    assert text.status_code == 415
    nan = b'{"function": "echo", "kwargs": {"value": NaN}}'
    strict = await mounted.post("/v1/jobs", content=nan, headers=admin | {"Content-Type": "application/json"})
    assert strict.status_code == 422
    assert strict.json()["detail"][0]["loc"] == ["body", "kwargs", "value"]
    typed = await mounted.post("/v1/functions/send_order_receipt/jobs", headers=admin,
                               json={"order_id": "5", "email": "a@example.com", "total": 1.5})  # fmt: skip
    assert typed.status_code == 422
    assert (await mounted.post("/v1/jobs", json={**ECHO, "defer_by": True}, headers=admin)).status_code == 422
    assert await redis.zcard("arq:queue") == 0


async def test_platform_answers_carry_security_headers_and_check_host(
    redis_server, redis: ArqRedis, registry: Registry
) -> None:
    settings = make_settings(redis_server.url, api_keys=[READER])
    app = users_app(settings, registry, flat=False)
    async with serve(app) as client:
        answer = await client.get("/v1/queues", headers=bearer(READ_KEY))
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert "frame-ancestors 'none'" in answer.headers["content-security-policy"]
    async with serve(app, host="rebound.example") as client:
        refused = await client.get("/v1/queues", headers=bearer(READ_KEY))
        assert refused.status_code == 400
        assert refused.json()["detail"][0]["type"] == "invalid_host"
        assert (await client.post("/mine")).status_code == 200  # the app's own Host policy is its own


async def test_the_apps_own_routes_are_left_alone(mounted: httpx.AsyncClient) -> None:
    mine = await mounted.post("/mine", json={"a": 1})
    assert mine.status_code == 200
    assert "content-security-policy" not in mine.headers
    plain = await mounted.post("/mine", content=b"{}", headers={"Content-Type": "text/plain"})
    assert plain.status_code != 415  # whatever FastAPI answers: the platform's JSON-only rule is not applied


async def test_without_keys_a_mounted_platform_serves_only_loopback(
    redis_server, redis: ArqRedis, registry: Registry
) -> None:
    app = users_app(make_settings(redis_server.url), registry, flat=False)
    async with serve(app) as remote:  # 203.0.113.7
        refused = await remote.post("/v1/jobs", json=ECHO)
        assert refused.status_code == 403
        assert refused.json()["detail"][0]["type"] == "loopback_only"
        assert (await remote.post("/mine")).status_code == 200
    assert await redis.zcard("arq:queue") == 0
