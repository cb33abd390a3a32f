"""Per-function limits across three real worker processes (`arq worker.WorkerSettings`), measured with a ledger
of start and end times the jobs write to a file, outside Redis."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from core.embedded_redis import RedisProcess
from settings import Settings
from tests.conftest import api_client
from tests.support.processes import start_worker, stop_process
from tests.support.waiting import wait_for
from tests.test_flow import FLOW_MODULES, flow_settings, ledger_lines, max_overlap  # noqa: F401

StartWorkers = Callable[..., Awaitable[list[subprocess.Popen[bytes]]]]


@pytest.fixture
async def flow_client(flow_settings: Settings, redis: Any) -> Any:  # noqa: F811
    async with api_client(flow_settings) as http:
        yield http


@pytest.fixture
def start_workers(redis_server: RedisProcess, flow_client: httpx.AsyncClient, tmp_path: Path) -> Iterator[StartWorkers]:
    """Start real worker processes running the flow jobs, and wait until each one's heartbeat is listed."""
    started: list[subprocess.Popen[bytes]] = []
    log = tmp_path / "workers.log"

    async def start(count: int, **env: str) -> list[subprocess.Popen[bytes]]:
        processes = [
            start_worker(redis_server.url, log, JOB_MODULES=",".join(FLOW_MODULES), **env) for _ in range(count)
        ]
        started.extend(processes)

        async def listed() -> set[int]:
            for process in processes:
                if process.poll() is not None:
                    raise AssertionError(f"a worker exited: {log.read_text()[-3000:]}")
            return {worker["pid"] for worker in (await flow_client.get("/v1/workers")).json()}

        await wait_for(listed, lambda pids: {p.pid for p in processes} <= pids, timeout=20)
        return processes

    try:
        yield start
    finally:
        for process in started:
            stop_process(process)


async def enqueue_many(client: httpx.AsyncClient, function: str, count: int, **kwargs: Any) -> list[str]:
    jobs = [{"function": function, "kwargs": kwargs} for _ in range(count)]
    response = await client.post("/v1/jobs/batch", json={"jobs": jobs})
    assert response.status_code == 202, response.text
    return [job["job_id"] for job in response.json()["accepted"]]


async def read(path: Path) -> list[list[str]]:
    return ledger_lines(path)


async def test_a_rate_limit_holds_across_three_workers(
    flow_client: httpx.AsyncClient, start_workers: StartWorkers, tmp_path: Path
) -> None:
    ledger = tmp_path / "ledger"
    await start_workers(3)
    await enqueue_many(flow_client, "rated", 40, ledger=str(ledger))

    lines = await wait_for(lambda: read(ledger), lambda got: len(got) >= 31, timeout=15)

    starts = sorted(float(line[1]) for line in lines)
    first = starts[0]
    in_five_seconds = sum(1 for t in starts if t < first + 5.0)
    assert 23 <= in_five_seconds <= 27, starts  # 5/s, within 10%
    # Never more than five in any second (0.9 s: the ledger's times trail the claims by a few ms each).
    assert max(sum(1 for t in starts if start <= t < start + 0.9) for start in starts) <= 5
    assert len({line[2] for line in lines}) >= 2  # more than one process took part


async def test_a_concurrency_limit_is_never_exceeded_across_three_workers(
    flow_client: httpx.AsyncClient, start_workers: StartWorkers, tmp_path: Path
) -> None:
    ledger = tmp_path / "ledger"
    await start_workers(3)
    await enqueue_many(flow_client, "paired", 12, ledger=str(ledger), hold_s=0.3)
    await enqueue_many(flow_client, "unlimited", 6, ledger=str(ledger))

    lines = await wait_for(
        lambda: read(ledger), lambda got: sum(1 for line in got if line[0] == "end") == 12, timeout=20
    )

    assert max_overlap(lines) == 2
    assert sum(1 for line in lines if line[3] == "unlimited") == 6


async def test_a_killed_workers_concurrency_slots_come_back_after_its_lease(
    flow_client: httpx.AsyncClient, start_workers: StartWorkers, tmp_path: Path
) -> None:
    ledger = tmp_path / "ledger"
    (first,) = await start_workers(1, JOB_LEASE_SECONDS="2", SHUTDOWN_GRACE_SECONDS="0")
    await enqueue_many(flow_client, "paired", 3, ledger=str(ledger), hold_s=60)
    await wait_for(lambda: read(ledger), lambda got: len(got) == 2, timeout=10)  # both slots taken

    first.send_signal(signal.SIGKILL)
    first.wait()
    killed_at = time.time()
    (second,) = await start_workers(1, JOB_LEASE_SECONDS="2", SHUTDOWN_GRACE_SECONDS="0")

    lines = await wait_for(
        lambda: read(ledger), lambda got: sum(1 for line in got if line[2] == str(second.pid)) == 2, timeout=15
    )
    restarted = [float(line[1]) for line in lines if line[2] == str(second.pid)]
    assert min(restarted) > killed_at  # the dead worker's slots came back once its leases lapsed
    stop_process(second)
