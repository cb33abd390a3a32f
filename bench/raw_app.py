"""The HTTP baseline: the few lines a FastAPI user writes around raw arq (no validation, pickle).

`uvicorn bench.raw_app:app` with `REDIS_URL` set; same route and body as the platform's `POST /v1/jobs`,
so the same load generator drives both and the difference is the platform's own work.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, TypedDict, cast

from arq import create_pool
from arq.connections import ArqRedis, RedisSettings
from fastapi import FastAPI, Request
from pydantic import BaseModel


class State(TypedDict):
    pool: ArqRedis


class EnqueueRequest(BaseModel):  # type: ignore[no-redef]  # pydantic's mypy plugin and a field named kwargs
    function: str
    kwargs: dict[str, Any] = {}


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[State]:
    pool = await create_pool(RedisSettings.from_dsn(os.environ["REDIS_URL"]))
    try:
        yield {"pool": pool}
    finally:
        await pool.aclose()


app = FastAPI(lifespan=lifespan)


@app.post("/v1/jobs", status_code=202)
async def enqueue(body: EnqueueRequest, request: Request) -> dict[str, str | None]:
    job = await cast(ArqRedis, request.state.pool).enqueue_job(body.function, **body.kwargs)
    return {"job_id": job.job_id if job else None}


@app.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}
