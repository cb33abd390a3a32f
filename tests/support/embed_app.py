"""A user's own FastAPI app with the platform mounted, as the embedding tests use it (in process, or served by
uvicorn: `uvicorn tests.support.embed_app:app`, settings from the environment)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Request

from core.registry import Registry
from service import JobsDep, Platform, Timing
from settings import Settings
from tests.support.sample_jobs import echo, sleep_for

LINGER_S = 30.0


async def linger(request: Request) -> AsyncIterator[None]:
    """Request-scoped, entered after the jobs handle, so its exit runs first, after the response was sent: it
    keeps the process busy between the response and the release (where a crash is the interesting case)."""
    yield
    if request.query_params.get("linger"):
        await asyncio.sleep(LINGER_S)


def build(settings: Settings | None = None, registry: Registry | None = None) -> FastAPI:
    platform = Platform(settings, registry)

    @asynccontextmanager
    async def own_lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        yield {"greeting": "hello"}

    app = FastAPI(lifespan=platform.lifespan(own_lifespan))
    app.include_router(platform.router)

    @app.post("/echo")
    async def post_echo(
        jobs: JobsDep,
        request: Request,
        _: Annotated[None, Depends(linger)],
        value: str = "x",
        timing: Timing = Timing.now,
        fail: bool = False,
        delay: float = 0,
        job_id: str | None = None,
    ) -> dict[str, Any]:
        if delay:
            await asyncio.sleep(delay)
        queued = await jobs.options(timing, job_id=job_id).enqueue(echo, value=value)
        if fail:
            raise HTTPException(400, "the route failed after enqueueing")
        return {"job_id": queued, "greeting": request.state.greeting}

    @app.post("/two")
    async def post_two(jobs: JobsDep) -> dict[str, str]:
        """All three modes in one route."""
        return {
            "now": await jobs.enqueue(echo, value="now"),
            "on_success": await jobs.on_success.enqueue(sleep_for, seconds=0),
            "after_response": await jobs.after_response.enqueue(echo, "positional"),
        }

    return app


def __getattr__(name: str) -> FastAPI:  # `uvicorn tests.support.embed_app:app` builds it from the environment
    if name == "app":
        return build()
    raise AttributeError(name)
