"""The security layer's own cost per `POST /v1/jobs`, measured in one process so other load on the machine
cancels out as far as it can: (1) the whole request through ASGI against a real Redis, the same app with
and without the layer (`bench.security_off.without_checks`: the guard keeps the request id, HTTP metrics and
500 handler, and loses the Host check and security headers, the key check and rate limiter, and the body
read and parse), batches interleaved, the fastest batch of each kept; (2) the guard alone in front of a
trivial app, against the guard without the layer, and `check_kwargs` (in the route), fastest of many batches.

`python -m bench.security_micro [--batches 40] [--json]` (starts its own redis-server) prints µs per request and
the share.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from bench.security_off import ChecksOff, without_checks
from core.embedded_redis import free_port, start_redis
from core.registry import load_job_modules
from service.app import create_app
from service.guard import Guard
from service.limits import RateLimiter
from service.mint_key import mint
from service.strict_json import check_kwargs
from settings import Settings

BODY = b'{"function": "noop", "kwargs": {}}'
BATCH, BATCHES = 200, 40


async def _post(app: Any, headers: list[tuple[bytes, bytes]], state: dict[str, Any]) -> int:
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
        "path": "/v1/jobs", "raw_path": b"/v1/jobs", "query_string": b"", "root_path": "", "headers": headers,
        "client": ("127.0.0.1", 5000), "server": ("127.0.0.1", 8000), "state": dict(state),
    }  # fmt: skip
    sent = False
    status = 0

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": BODY, "more_body": False}
        await asyncio.Event().wait()
        return {}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(scope, receive, send)
    return status


async def measure(redis_url: str, batches: int = BATCHES) -> dict[str, float]:
    """µs per request: the whole request without and with the layer (fastest of `batches` batches), each guard
    alone and `check_kwargs` alone, and the layer's share of a request."""
    key, entry = mint("bench", ["enqueue"])
    settings = Settings(
        redis_url=redis_url, job_modules=["jobs", "bench.noop_jobs"], log_level="WARNING", log_format="json",
        api_keys=[entry], rate_limit_per_minute=int(os.environ.get("RL", "10000000")),
    )  # fmt: skip
    guarded = create_app(settings)
    bare = without_checks(create_app(settings))  # the stack is built on first call
    base = [(b"host", b"127.0.0.1:8000"), (b"content-type", b"application/json"), (b"content-length", b"34")]
    headers = {"guarded": [*base, (b"authorization", f"Bearer {key}".encode())], "bare": base}
    best = {"guarded": float("inf"), "bare": float("inf")}
    async with LifespanManager(guarded) as on, LifespanManager(bare) as off:
        running = {"guarded": on, "bare": off}
        for _ in range(batches):
            for name in ("guarded", "bare"):
                manager = running[name]
                state = manager._state  # what uvicorn copies into each request's scope
                started = time.perf_counter()
                for _ in range(BATCH):
                    assert await _post(manager.app, headers[name], state) == 202
                best[name] = min(best[name], (time.perf_counter() - started) / BATCH)
    spec = load_job_modules(["jobs", "bench.noop_jobs"]).get("noop")
    started = time.perf_counter()
    for _ in range(100_000):
        check_kwargs(spec, {}, ("body", "kwargs"), 65_536, 32)
    kwargs_us = (time.perf_counter() - started) / 100_000 * 1e6
    guards_us = await _guards_alone(settings, guarded, headers["guarded"])
    bare_us = best["bare"] * 1e6
    layer_us = sum(guards_us.values()) + kwargs_us
    return {
        "bare_us": bare_us,
        "guarded_us": best["guarded"] * 1e6,
        "whole_request_change": best["guarded"] / best["bare"] - 1,
        "guard_us": sum(guards_us.values()),
        "check_kwargs_us": kwargs_us,
        "layer_us": layer_us,
        "layer_share": layer_us / (bare_us + layer_us),
    }


def report(figures: dict[str, float]) -> None:
    bare_us, layer_us = figures["bare_us"], figures["layer_us"]
    print(
        f"(1) whole request, fastest batch of {BATCH}: without the layer {bare_us:.0f} µs, "
        f"with {figures['guarded_us']:.0f} µs"
    )
    print(f"(2) alone: the guard's checks {figures['guard_us']:.1f}, check_kwargs {figures['check_kwargs_us']:.1f} µs: "
          f"{layer_us:.0f} µs a request,")  # fmt: skip
    share = 100 * figures["layer_share"]
    print(
        f"    {share:.1f}% of a {bare_us + layer_us:.0f} µs request, so about {share:.1f}% of single-process throughput"
    )


async def _guards_alone(settings: Settings, app: FastAPI, headers: list[tuple[bytes, bytes]]) -> dict[str, float]:
    """The guard in front of an app that only answers, minus the same guard without the layer."""

    async def answer(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "http.response.start", "status": 202, "headers": [(b"content-type", b"x")]})
        await send({"type": "http.response.body", "body": b"{}"})

    async def call(target: Any) -> None:
        scope: dict[str, Any] = {"type": "http", "method": "POST", "path": "/v1/jobs", "headers": headers}
        scope.update(client=("127.0.0.1", 1), state={}, root_path="")

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": BODY, "more_body": False}

        async def send(message: Any) -> None:
            pass

        await target(scope, receive, send)

    routes = lambda: app.router.routes  # noqa: E731
    guards = {
        "answer": answer,
        "ChecksOff": ChecksOff(answer, settings, RateLimiter(0), routes),
        "Guard": Guard(answer, settings, RateLimiter(settings.rate_limit_per_minute), routes),
    }
    best = dict.fromkeys(guards, float("inf"))
    for _ in range(20):
        for name, target in guards.items():
            started = time.perf_counter()
            for _ in range(2000):
                await call(target)
            best[name] = min(best[name], (time.perf_counter() - started) / 2000 * 1e6)
    return {"Guard": best["Guard"] - best["ChecksOff"]}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.security_micro", description=__doc__.split("\n")[0])
    parser.add_argument("--batches", type=int, default=BATCHES, help="batches of each app, interleaved")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    args = parser.parse_args()
    with TemporaryDirectory() as tmp:
        redis = start_redis(free_port(), Path(tmp), appendonly=False)
        try:
            figures = asyncio.run(measure(redis.url, args.batches))
        finally:
            redis.stop()
    if args.json:
        json.dump(figures, sys.stdout)
    else:
        report(figures)


if __name__ == "__main__":
    main()
