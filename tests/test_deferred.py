"""Deferred jobs: `defer_by` and `defer_until` hold a job back until its time, then a worker starts it
promptly. `record_start` returns the wall-clock time it started, so the timing is measured, not guessed."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from tests.support.waiting import wait_for

DEFER_S = 2.0
# Worker and API stamp times in milliseconds; allow for that rounding and nothing more.
CLOCK_SLACK_S = 0.005
START_WITHIN_S = 1.0


async def assert_runs_on_time(client: httpx.AsyncClient, job_id: str, due: float) -> None:
    """Poll the job: every read made before `due` must say deferred; it must start in [due, due + 1 s]."""
    early_statuses: list[str] = []

    async def observe() -> dict[str, Any]:
        view = (await client.get(f"/v1/jobs/{job_id}")).json()
        if time.time() < due - CLOCK_SLACK_S:  # the read was answered before the job was due
            early_statuses.append(view["status"])
        return view

    view = await wait_for(observe, lambda v: v["status"] == "complete", timeout=DEFER_S + 3, interval=0.05)
    assert early_statuses, "the job was never observed before it was due"
    assert set(early_statuses) == {"deferred"}
    started = view["result"]
    assert started >= due - CLOCK_SLACK_S, f"started {due - started:.3f}s early"
    assert started <= due + START_WITHIN_S, f"started {started - due:.3f}s late"


async def test_deferred_job_does_not_run_early(client: httpx.AsyncClient, running_worker) -> None:
    before = time.time()
    response = await client.post(
        "/v1/jobs", json={"function": "record_start", "kwargs": {"token": "defer-by"}, "defer_by": DEFER_S}
    )
    assert response.status_code == 202
    accepted = response.json()
    assert accepted["status"] == "deferred"
    due = datetime.fromisoformat(accepted["scheduled_at"]).timestamp()
    assert before + DEFER_S <= due + CLOCK_SLACK_S <= time.time() + DEFER_S + CLOCK_SLACK_S

    await assert_runs_on_time(client, accepted["job_id"], due)


async def test_job_deferred_until_a_time_does_not_run_early(client: httpx.AsyncClient, running_worker) -> None:
    when = datetime.now(UTC) + timedelta(seconds=DEFER_S)
    response = await client.post(
        "/v1/jobs",
        json={"function": "record_start", "kwargs": {"token": "defer-until"}, "defer_until": when.isoformat()},
    )
    assert response.status_code == 202
    accepted = response.json()
    assert accepted["status"] == "deferred"
    assert datetime.fromisoformat(accepted["scheduled_at"]) == when

    await assert_runs_on_time(client, accepted["job_id"], when.timestamp())
