"""Failures a job brings on itself, through real processes: timeouts are retried then dead-lettered, retry
gaps follow the backoff policy, a dead job requeued through the API runs again, and a poison job that kills
its worker on every try ends in the dead letters without starving the jobs around it."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from tests.faults.harness import Platform, report, running_platform, settle
from tests.support.waiting import wait_for

# The policy flaky_job retries with (tests/faults/fault_jobs.py: RetryPolicy(delay_s=0.4, factor=2, jitter=0.1)).
BACKOFF_DELAYS_S = [0.4, 0.8, 1.6]
BACKOFF_JITTER = 0.1
# A retry is due at `failed + delay`; an idle worker polls every POLL_DELAY_SECONDS (0.1) and then starts it.
GAP_MARGIN_S = 0.25
POISON_LEASE_S = 3


async def enqueue(platform: Platform, function: str, **kwargs: Any) -> str:
    answer, job_id = await platform.post_job(function, **kwargs)
    assert answer.status == 202 and job_id is not None, answer
    return job_id


async def wait_for_dead(platform: Platform, job_id: str, timeout: float) -> dict[str, Any]:
    async def dead() -> httpx.Response:
        return await platform.client.get(f"/v1/dead/{job_id}")

    response = await wait_for(dead, lambda r: r.status_code == 200, timeout=timeout, interval=0.1)
    letter: dict[str, Any] = response.json()
    return letter


async def test_timeouts_backoff_and_requeue_of_a_dead_job(tmp_path: Path) -> None:
    started = time.monotonic()
    async with running_platform(tmp_path, workers=1) as platform:
        slow = await enqueue(platform, "slow_job", token="slow")
        flaky = await enqueue(platform, "flaky_job", token="flaky", failures=3)
        failing = await enqueue(platform, "failing_job", token="failing")

        timed_out, first_death = await asyncio.gather(
            wait_for_dead(platform, slow, timeout=15), wait_for_dead(platform, failing, timeout=15)
        )
        flaky_outcome = (await platform.client.get(f"/v1/jobs/{flaky}/result", params={"wait": 15})).json()
        flaky_view = (await platform.client.get(f"/v1/jobs/{flaky}")).json()

        starts_before_requeue = len(platform.ledger.by_token("start")["failing"])
        requeue = (await platform.client.post("/v1/dead/requeue", json={"job_ids": [failing]})).json()

        async def failing_starts() -> int:
            return len(platform.ledger.by_token("start")["failing"])

        await wait_for(failing_starts, lambda n: n == 4, timeout=15)
        second_death = await wait_for_dead(platform, failing, timeout=15)

    starts = platform.ledger.by_token("start")
    flaky_starts = sorted(e.at for e in starts["flaky"])
    failed_at = [datetime.fromisoformat(a["at"]).timestamp() for a in flaky_view["attempts"]]
    planned = [a["retry_in_s"] for a in flaky_view["attempts"]]
    gaps = [round(flaky_starts[n + 1] - failed_at[n], 3) for n in range(len(failed_at))]
    report(
        "timeouts_backoff_requeue",
        "short",
        timeout_tries=timed_out["tries"],
        timeout_attempt_durations_s=[a["duration_s"] for a in timed_out["attempts"]],
        backoff_planned_s=planned,
        backoff_measured_s=gaps,
        backoff_late_by_s=[round(g - p, 3) for g, p in zip(gaps, planned, strict=True)],
        failing_starts_before_requeue=starts_before_requeue,
        failing_starts_after_requeue=len(starts["failing"]),
        duration_s=round(time.monotonic() - started, 1),
    )
    # Timeout: retried once, then dead with two JobTimeout attempts.
    assert timed_out["tries"] == 2 and timed_out["reason"] == "failed 2 of 2 tries"
    assert [a["error_type"] for a in timed_out["attempts"]] == ["JobTimeout", "JobTimeout"]
    assert [a["kind"] for a in timed_out["attempts"]] == ["timeout", "timeout"]
    assert (timed_out["error"]["kind"], timed_out["error"]["type"]) == ("timeout", "JobTimeout")
    assert all(abs(a["duration_s"] - 1.0) < 0.2 for a in timed_out["attempts"])
    assert len(starts["slow"]) == 2 and "slow" not in platform.ledger.ended()
    # Backoff: three failed tries with the policy's delays, each honoured to within the margin.
    assert flaky_outcome["status"] == "complete" and flaky_outcome["result"] == 4
    assert [a["error_type"] for a in flaky_view["attempts"]] == ["ConnectionError"] * 3
    for delay, plan in zip(BACKOFF_DELAYS_S, planned, strict=True):
        assert delay * (1 - BACKOFF_JITTER) <= plan <= delay * (1 + BACKOFF_JITTER)
    for gap, plan in zip(gaps, planned, strict=True):
        assert plan - 0.01 <= gap <= plan + GAP_MARGIN_S, (gaps, planned)
    # Dead -> requeue -> runs again with fresh tries, and dies again.
    assert first_death["tries"] == 2 and first_death["error"]["type"] == "ValueError"
    assert starts_before_requeue == 2
    assert requeue == {"requeued": [failing], "not_found": [], "not_requeued": {}}
    assert [e.job_try for e in starts["failing"]] == [1, 2, 1, 2]
    assert second_death["tries"] == 2 and second_death["kwargs"] == {"token": "failing"}


async def test_poison_job_is_dead_lettered_after_its_tries_and_starves_no_other_job(tmp_path: Path) -> None:
    started = time.monotonic()
    async with running_platform(tmp_path, workers=2, JOB_LEASE_SECONDS=str(POISON_LEASE_S)) as platform:
        accepted: dict[str, str] = {}
        for n in range(50):
            if n == 10:
                poison = await enqueue(platform, "poison_job", token="poison")
            accepted[await enqueue(platform, "ledger_job", token=f"victim-{n}", seconds=0.2)] = f"victim-{n}"
        letter = await wait_for_dead(platform, poison, timeout=45)
        dead_at = time.monotonic()
        outcome = await settle(platform, accepted, timeout=30)
        restarts = list(platform.restarts)

    report(
        "poison_job",
        "short",
        poison_tries=letter["tries"],
        poison_starts=len(platform.ledger.by_token("start")["poison"]),
        worker_restarts=len(restarts),
        dead_lettered_after_s=round(dead_at - started, 1),
        reason=letter["reason"],
        others_accepted=outcome.accepted,
        others_complete=outcome.complete,
        others_lost=len(outcome.lost),
        others_run_twice=len(outcome.duplicates),
        lease_s=POISON_LEASE_S,
        duration_s=round(time.monotonic() - started, 1),
    )
    assert letter["tries"] == 3
    assert letter["reason"] == "max tries exceeded: its worker stopped while running it"
    assert [a["error_type"] for a in letter["attempts"]] == ["WorkerLost"] * 3
    assert [a["kind"] for a in letter["attempts"]] == ["worker_lost"] * 3
    assert (letter["error"]["kind"], letter["error"]["type"]) == ("worker_lost", "WorkerLost")
    assert [e.job_try for e in platform.ledger.by_token("start")["poison"]] == [1, 2, 3]
    assert len(restarts) == 3 and {r.code for r in restarts} == {-9}
    assert outcome.lost == [] and outcome.complete == 50, "no other job starved"
