"""The after-response mode against a real uvicorn process: killed between the response and the release, and
stopped while a request is in flight."""

from __future__ import annotations

import asyncio
import signal
import time
from datetime import timedelta
from pathlib import Path

import httpx
from arq.connections import ArqRedis

from core.embedded_redis import RedisProcess
from core.status import JobState, read_job
from core.worker import PlatformWorker
from tests.support.serving import served
from tests.support.waiting import wait_for

APP = "tests.support.embed_app:app"


async def test_a_job_held_by_an_api_killed_after_the_response_still_runs(
    redis_server: RedisProcess, redis: ArqRedis, running_worker: PlatformWorker, log_dir: Path
) -> None:
    with served(APP, redis_server.url, log_dir / "api.log", HOLD_GRACE_SECONDS="1") as (url, process):
        async with httpx.AsyncClient(base_url=url) as client:
            # `linger` keeps the process between sending the response and releasing the job
            response = await client.post("/echo", params={"timing": "after_response", "linger": 1, "job_id": "c1"})
        assert response.status_code == 200
        answered = time.time()
        process.send_signal(signal.SIGKILL)
        process.wait(10)
    record = await read_job(redis, "arq:queue", "c1")
    assert record is not None and record.status == JobState.deferred  # held, not lost with the process
    record = await wait_for(
        lambda: read_job(redis, "arq:queue", "c1"), lambda r: r is not None and r.status.finished, timeout=15
    )
    assert record is not None and record.status == JobState.complete
    assert record.started_at is not None
    assert record.started_at.timestamp() >= answered - 0.05  # released by its hold running out, not earlier
    assert record.scheduled_at is not None and record.started_at - record.scheduled_at < timedelta(seconds=2)


async def test_sigterm_lets_a_request_in_flight_finish_and_release_its_job(
    redis_server: RedisProcess, redis: ArqRedis, running_worker: PlatformWorker, log_dir: Path
) -> None:
    with served(APP, redis_server.url, log_dir / "api.log", HOLD_GRACE_SECONDS="60") as (url, process):
        async with httpx.AsyncClient(base_url=url, timeout=10) as client:
            request = asyncio.create_task(
                client.post("/echo", params={"timing": "after_response", "delay": 1, "job_id": "t1"})
            )
            await asyncio.sleep(0.4)
            process.send_signal(signal.SIGTERM)
            response = await request
        assert response.status_code == 200
        # uvicorn re-raises the signal once it shut down cleanly
        assert await asyncio.to_thread(process.wait, 15) in (0, -signal.SIGTERM)
        assert "Application shutdown complete" in (log_dir / "api.log").read_text()
    # released at shutdown, so it runs now rather than after its 60 s hold
    record = await wait_for(
        lambda: read_job(redis, "arq:queue", "t1"), lambda r: r is not None and r.status.finished, timeout=10
    )
    assert record is not None and record.status == JobState.complete
