"""`make run` (run_platform.py) stops in order on Ctrl-C: the API first, then the worker drains its running
job, then the embedded Redis, which must not take the terminal's SIGINT itself."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from arq.connections import ArqRedis
from arq.jobs import Job

from core import codec
from core.embedded_redis import start_redis
from tests.support.launcher import Launcher, start_launcher, wait_until_serving
from tests.support.waiting import wait_for

JOB_SECONDS = 3.0


@pytest.fixture
async def launched(tmp_path: Path) -> AsyncIterator[tuple[Launcher, httpx.AsyncClient]]:
    launcher = start_launcher(tmp_path, SHUTDOWN_GRACE_SECONDS="20")
    try:
        async with httpx.AsyncClient(base_url=launcher.api_url, timeout=10) as client:
            await wait_until_serving(launcher, client)
            yield launcher, client
    finally:
        launcher.stop()


async def read_result(launcher: Launcher, job_id: str) -> Any:
    """The job's stored outcome, read from the embedded Redis's append-only file after it stopped."""
    redis = start_redis(launcher.redis_port, launcher.data_dir / "redis", appendonly=True)
    pool = ArqRedis(host="127.0.0.1", port=launcher.redis_port)
    try:
        return await Job(job_id, pool, _deserializer=codec.loads).result_info()
    finally:
        await pool.aclose()
        redis.stop()


async def test_ctrl_c_stops_api_then_worker_then_redis_and_the_running_job_finishes_on_its_first_try(
    launched: tuple[Launcher, httpx.AsyncClient],
) -> None:
    launcher, client = launched
    job = {"function": "sleep_for", "kwargs": {"seconds": JOB_SECONDS}, "job_id": "long-job"}
    assert (await client.post("/v1/jobs", json=job)).status_code == 202

    async def status() -> str:
        return str((await client.get("/v1/jobs/long-job")).json()["status"])

    await wait_for(status, lambda s: s == "in_progress", timeout=10)
    launcher.interrupt()
    returncode = launcher.process.wait(JOB_SECONDS + 30)

    log = launcher.text()
    assert returncode == 0, log[-3000:]
    assert "Traceback" not in log, log[-3000:]
    stopped = [(e["process"], e.get("exit_code")) for e in launcher.events() if e["event"] == "run.stopped"]
    assert stopped == [("api", 0), ("worker", 0), ("redis", 0)], log[-3000:]
    outage = [e for e in launcher.events() if "unavailable" in e["event"]]
    assert outage == []
    result = await read_result(launcher, "long-job")
    assert result is not None
    assert result.success
    assert result.result == JOB_SECONDS
    assert result.job_try == 1
