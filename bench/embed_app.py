"""What `bench.embed_overhead` serves: the standalone platform app, plus a user's routes that enqueue
directly through `core.enqueue` and through the route handle (`JobsDep`) in each timing mode; all
enqueue `record_analytics_event` with the same arguments."""

from __future__ import annotations

from typing import Any

from fastapi import Request

from core.enqueue import enqueue
from jobs.orders import record_analytics_event
from service import JobsDep
from service.app import create_app
from service.deps import PoolDep, RegistryDep

app = create_app()
ARGS: dict[str, Any] = {"event": "signup", "properties": {"plan": "pro", "seats": 3}}


@app.post("/direct", status_code=202)
async def direct(request: Request) -> dict[str, Any]:
    state = request.state
    accepted = await enqueue(state.pool, state.registry.spec_of(record_analytics_event), ARGS)
    return {"job_id": accepted.job_id}


@app.post("/direct/deps", status_code=202)
async def direct_deps(pool: PoolDep, registry: RegistryDep) -> dict[str, Any]:
    accepted = await enqueue(pool, registry.spec_of(record_analytics_event), ARGS)
    return {"job_id": accepted.job_id}


@app.post("/handle/now", status_code=202)
async def handle_now(jobs: JobsDep) -> dict[str, Any]:
    return {"job_id": await jobs.enqueue(record_analytics_event, **ARGS)}


@app.post("/handle/on_success", status_code=202)
async def handle_on_success(jobs: JobsDep) -> dict[str, Any]:
    return {"job_id": await jobs.on_success.enqueue(record_analytics_event, **ARGS)}


@app.post("/handle/after_response", status_code=202)
async def handle_after_response(jobs: JobsDep) -> dict[str, Any]:
    return {"job_id": await jobs.after_response.enqueue(record_analytics_event, **ARGS)}
