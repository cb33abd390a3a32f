"""A user's own FastAPI app with the platform mounted, as the embedding tests use it (in process, or served by
uvicorn: `uvicorn tests.support.embed_app:app`, settings from the environment)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import BackgroundTasks, FastAPI, HTTPException, Request

from core.registry import Registry
from jobs.emails import send_welcome_email
from service import JobsDep, Platform, Timing
from settings import Settings
from tests.support.sample_jobs import echo, sleep_for

LINGER_S = 30.0


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
        background: BackgroundTasks,
        value: str = "x",
        timing: Timing = Timing.now,
        fail: bool = False,
        delay: float = 0,
        job_id: str | None = None,
        linger: bool = False,
    ) -> dict[str, Any]:
        if delay:
            await asyncio.sleep(delay)
        queued = await jobs.options(timing, job_id=job_id).enqueue(echo, value=value)
        if fail:
            raise HTTPException(400, "the route failed after enqueueing")
        if linger:  # background tasks run after the response was sent and before the release
            background.add_task(asyncio.sleep, LINGER_S)
        return {"job_id": queued, "greeting": request.state.greeting}

    @app.post("/bad-email")
    async def bad_email(jobs: JobsDep) -> None:
        await jobs.after_response.enqueue(send_welcome_email, email="not-an-email", name="Ada")

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
