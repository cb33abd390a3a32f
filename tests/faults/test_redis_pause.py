"""`CLIENT PAUSE` on Redis: the API gives up within REDIS_TIMEOUT_SECONDS with a 503, `/health` stays fast,
and jobs are accepted again once the pause ends."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from tests.faults.harness import Answer, Platform, in_background, report, running_platform
from tests.support.waiting import wait_for

PAUSE_S = 5.0
TIMEOUT_S = 1.0
MARGIN_S = 0.5
HEALTH_LIMIT_S = 0.1


async def health_latencies(platform: Platform, until: float) -> list[tuple[int, float]]:
    found = []
    while time.monotonic() < until:
        started = time.monotonic()
        status = (await platform.client.get("/health")).status_code
        found.append((status, time.monotonic() - started))
        await asyncio.sleep(0.05)
    return found


async def test_paused_redis_gives_a_prompt_503_and_health_stays_fast(tmp_path: Path) -> None:
    started = time.monotonic()
    async with running_platform(tmp_path, workers=1, REDIS_TIMEOUT_SECONDS=str(TIMEOUT_S)) as platform:
        before, job_id = await platform.post_job("ledger_job", token="before")
        assert before.status == 202 and job_id
        pause_ends = await platform.pause_redis(PAUSE_S)
        during: list[Answer] = []
        async with in_background(health_latencies(platform, pause_ends)) as health:
            while time.monotonic() + TIMEOUT_S + MARGIN_S < pause_ends:  # each POST is answered within the pause
                answer, _ = await platform.post_job("ledger_job", token=f"paused-{len(during)}")
                during.append(answer)
            latencies = await health

        async def post_after() -> Answer:
            return (await platform.post_job("ledger_job", token="after"))[0]

        after = await wait_for(post_after, lambda a: a.status == 202, timeout=10, interval=0.05)
        accepted_after_s = time.monotonic() - pause_ends
        done = await platform.client.get(f"/v1/jobs/{job_id}/result", params={"wait": 10})

    report(
        "redis_client_pause",
        "short",
        pause_s=PAUSE_S,
        redis_timeout_s=TIMEOUT_S,
        posts_during_pause=len(during),
        post_statuses_during_pause=sorted({a.status or 0 for a in during}),
        post_503_seconds=[round(a.elapsed_s, 3) for a in during],
        health_checks=len(latencies),
        health_max_ms=round(max(s for _, s in latencies) * 1000, 1),
        first_202_after_pause_s=round(accepted_after_s, 2),
        duration_s=round(time.monotonic() - started, 1),
    )
    assert len(during) >= 2
    assert {a.status for a in during} == {503}
    assert all(a.retry_after and a.retry_after.isdigit() for a in during)
    assert max(a.elapsed_s for a in during) < TIMEOUT_S + MARGIN_S
    assert {status for status, _ in latencies} == {200}
    assert max(s for _, s in latencies) < HEALTH_LIMIT_S
    assert after.status == 202 and accepted_after_s < 2
    assert done.json()["status"] == "complete"
