"""Redis SIGKILLed and restarted from its append-only file while jobs flow in: every job the API accepted
still runs, the same worker and API processes carry on, and the API answers 503 (never 500) meanwhile."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.faults.harness import (
    Answer,
    Load,
    duplicates_outside_outages,
    in_background,
    report,
    running_platform,
    settle,
)


@dataclass(frozen=True)
class RestartForm:
    name: str
    crashes: int
    down_s: float
    between_s: float


SHORT = RestartForm("short", crashes=1, down_s=3, between_s=2.5)
LONG = RestartForm("long", crashes=4, down_s=5, between_s=8)


def answered_between(answers: list[Answer], start: float, end: float) -> list[Answer]:
    """Answers to requests sent and answered while Redis was down."""
    return [a for a in answers if a.at >= start and a.at + a.elapsed_s <= end]


@pytest.mark.parametrize(
    "form",
    [
        pytest.param(SHORT, id="short"),
        pytest.param(LONG, id="long", marks=[pytest.mark.slow, pytest.mark.timeout(600)]),
    ],
)
async def test_redis_killed_and_restarted_loses_no_accepted_job(tmp_path: Path, form: RestartForm) -> None:
    started = time.monotonic()
    async with running_platform(tmp_path, workers=2, MAX_JOBS="10") as platform:
        assert platform.api is not None and platform.redis is not None
        pids = (platform.api.pid, *platform.worker_pids)
        stop = asyncio.Event()
        load = Load(platform, "aof", seconds=lambda n: 0.1)
        outages: list[tuple[float, float]] = []
        async with in_background(load.run(clients=3, until=stop, pace_s=0.02)) as producer:
            for _ in range(form.crashes):
                await asyncio.sleep(form.between_s)  # jobs flow
                killed_at = time.time()
                platform.redis.kill()
                await asyncio.sleep(form.down_s)
                platform.start_redis()
                outages.append((killed_at, time.time()))
            await asyncio.sleep(form.between_s)  # jobs flow after the last restart
            stop.set()
            await producer
        outcome = await settle(platform, load.accepted, timeout=60)
        alive = [p.poll() is None for p in (platform.api, *(slot.process for slot in platform.slots))]
        pids_after = (platform.api.pid, *platform.worker_pids)
        restarts = list(platform.restarts)

    unexplained = duplicates_outside_outages(outcome, platform.ledger, outages)
    during = [a for start, end in outages for a in answered_between(load.answers, start, end)]
    after_last = [j for j, at in load.accepted_at.items() if at > outages[-1][1]]
    report(
        "redis_sigkill_restart",
        form.name,
        redis_kills=form.crashes,
        down_s=form.down_s,
        accepted=outcome.accepted,
        complete=outcome.complete,
        dead=outcome.dead,
        lost=len(outcome.lost),
        duplicates=len(outcome.duplicates),
        unexplained_duplicates=len(unexplained),
        post_statuses=dict(load.statuses()),
        answers_during_outages=len(during),
        accepted_after_last_restart=len(after_last),
        worker_or_api_restarts=len(restarts),
        duration_s=round(time.monotonic() - started, 1),
    )
    assert outcome.lost == [], f"accepted (202) but never ran: {outcome.lost[:20]}"
    assert unexplained == {}, "ran twice without being in flight during an outage"
    assert set(load.statuses()) <= {"202", "503"}, "only 202 or 503, never a 500 or no answer"
    assert during and {a.status for a in during} == {503}
    assert pids_after == pids and all(alive) and restarts == [], "the same processes carried on"
    assert after_last, "jobs were accepted after the restart"
