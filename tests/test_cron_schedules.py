"""Cron schedules with kwargs and a time zone, several per function; pause, resume and run-now through the API,
with real workers and Redis; and the next tick and missed counting of a zoned schedule across DST changes."""

from __future__ import annotations

import asyncio
import sys
import time
import types
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime, timedelta
from signal import Signals
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from arq.connections import ArqRedis
from arq.cron import next_cron

from core import keys
from core.context import JobContext
from core.cron_ticks import Schedule, missed, next_tick
from core.registry import CronScheduleError, Registry, cron, load_registry
from core.worker import PlatformWorker
from core.worker_config import arq_cron_job
from settings import Settings, SettingsError
from tests.conftest import build_worker, make_settings
from tests.support.keys import ADMIN_KEY, ENQUEUE_KEY, READ_KEY, bearer
from tests.support.waiting import wait_for

PARIS = ZoneInfo("Europe/Paris")
NEW_YORK = ZoneInfo("America/New_York")
EVERY_SECOND: dict[str, Any] = {"second": None}

# --- the next tick and counting, across DST (pure) -------------------------------------------------------------


def local(tick: datetime | None, zone: ZoneInfo) -> str:
    assert tick is not None
    return tick.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S%z")


def ticks_from(fields: dict[str, Any], zone: ZoneInfo, start: datetime, n: int) -> list[str]:
    found, tick = [], start
    for _ in range(n):
        next_one = next_tick(fields, zone, tick)
        assert next_one is not None
        found.append(local(next_one, zone))
        tick = next_one
    return found


def test_a_daily_tick_in_the_hour_the_clocks_skip_does_not_run_that_day() -> None:
    # Paris springs forward on 2026-03-29 at 02:00 (to 03:00): 02:30 does not exist that day.
    daily = {"hour": 2, "minute": 30, "second": 0}
    assert ticks_from(daily, PARIS, datetime(2026, 3, 27, 12, tzinfo=UTC), 3) == [
        "2026-03-28 02:30:00+0100",
        "2026-03-30 02:30:00+0200",
        "2026-03-31 02:30:00+0200",
    ]


def test_a_repeated_hour_runs_once_at_its_first_occurrence() -> None:
    # Paris falls back on 2026-10-25 at 03:00 (to 02:00): 02:30 happens twice, and runs once (at +02:00).
    hourly = {"minute": 30, "second": 0}
    assert ticks_from(hourly, PARIS, datetime(2026, 10, 25, 0, 0, tzinfo=PARIS), 4) == [
        "2026-10-25 00:30:00+0200",
        "2026-10-25 01:30:00+0200",
        "2026-10-25 02:30:00+0200",
        "2026-10-25 03:30:00+0100",  # not 02:30+0100 again
    ]
    # Asked during the second pass of that hour, the next tick is the first wall time not yet run.
    second_pass = datetime(2026, 10, 25, 2, 10, tzinfo=PARIS).replace(fold=1)
    assert local(next_tick({"minute": {0, 30}, "second": 0}, PARIS, second_pass), PARIS) == "2026-10-25 03:00:00+0100"


def test_a_daily_tick_keeps_its_wall_time_across_both_changes() -> None:
    nine = {"hour": 9, "minute": 0, "second": 0}
    # New York springs forward on 2026-03-08 and falls back on 2026-11-01: 09:00 stays 09:00, UTC moves.
    assert ticks_from(nine, NEW_YORK, datetime(2026, 3, 7, 12, tzinfo=UTC), 3) == [
        "2026-03-07 09:00:00-0500",
        "2026-03-08 09:00:00-0400",
        "2026-03-09 09:00:00-0400",
    ]
    assert ticks_from(nine, NEW_YORK, datetime(2026, 10, 31, 12, tzinfo=UTC), 2) == [
        "2026-10-31 09:00:00-0400",
        "2026-11-01 09:00:00-0500",
    ]


def test_a_zoned_schedule_away_from_changes_agrees_with_arqs_next_cron_on_the_wall_clock() -> None:
    fields: dict[str, Any] = {"weekday": {0, 3}, "hour": {8, 17}, "minute": 15, "second": 0}
    start = datetime(2026, 6, 1, tzinfo=PARIS)
    ours = ticks_from(fields, PARIS, start, 12)
    arqs, tick = [], start
    for _ in range(12):
        tick = next_cron(tick, **fields)
        arqs.append(tick.strftime("%Y-%m-%d %H:%M:%S%z"))
    assert ours == arqs


@pytest.mark.parametrize("day", [date(2026, 3, 29), date(2026, 10, 25), date(2026, 7, 1)])
def test_counting_agrees_with_stepping_through_the_next_ticks_on_a_change_day(day: date) -> None:
    fields = {"minute": {0, 20, 40}, "second": 0}
    schedule = Schedule.of(fields, PARIS)
    start = datetime(day.year, day.month, day.day, tzinfo=PARIS) - timedelta(hours=2)
    end = start + timedelta(hours=30)  # 30 hours of wall clock: 22:00 the day before to 04:00 the day after
    stepped, tick = 0, next_tick(fields, PARIS, start - timedelta(seconds=1))
    while tick is not None and tick <= end:
        stepped += 1
        tick = next_tick(fields, PARIS, tick)
    assert schedule.count(int(start.timestamp()), int(end.timestamp()) - 1) == stepped
    hours = {date(2026, 3, 29): 29, date(2026, 10, 25): 30, date(2026, 7, 1): 30}[day]  # each wall hour once
    assert stepped == 3 * hours


def test_missed_ticks_of_a_zoned_schedule_leave_out_paused_spans() -> None:
    # Hourly at :30 Paris time over the fall-back day, ran only the first tick; paused for three hours.
    fields = {"minute": 30, "second": 0}
    first = int(datetime(2026, 10, 25, 0, 30, tzinfo=PARIS).timestamp())
    cutoff = datetime(2026, 10, 25, 12, 0, tzinfo=PARIS)  # 00:30 .. 11:30 wall: 12 ticks, one run
    assert missed(fields, frozenset({first}), cutoff, PARIS) == (11, datetime(2026, 10, 25, 10, 30, tzinfo=UTC))
    paused = (int(datetime(2026, 10, 25, 5, 0, tzinfo=PARIS).timestamp()), int(cutoff.timestamp()))
    count, latest = missed(fields, frozenset({first}), cutoff, PARIS, (paused,))
    assert count == 4  # 01:30, 02:30, 03:30, 04:30 (05:30 .. 11:30 fell in the pause)
    assert latest is not None and local(latest, PARIS) == "2026-10-25 04:30:00+0100"


# --- declaring schedules ----------------------------------------------------------------------------------------


async def sync_region(ctx: JobContext, region: str, full: bool = False) -> None:
    """Sync one region."""


def test_several_named_schedules_of_one_function_each_keep_their_kwargs_and_zone() -> None:
    module = types.ModuleType("tests_cron_two_schedules")

    @cron(hour=3, minute=0, kwargs={"region": "eu"}, tz="Europe/Paris", name="nightly_eu")
    @cron(hour=3, minute=0, kwargs={"region": "us", "full": True}, tz="America/New_York", name="nightly_us")
    async def sync(ctx: JobContext, region: str, full: bool = False) -> None:
        """Sync one region."""

    module.sync = sync  # type: ignore[attr-defined]
    sys.modules[module.__name__] = module
    try:
        registry = Registry.build([module.__name__])
    finally:
        del sys.modules[module.__name__]
    eu, us = registry.crons["nightly_eu"], registry.crons["nightly_us"]
    assert (eu.function_name, eu.kwargs, eu.tz) == ("sync", {"region": "eu", "full": False}, "Europe/Paris")
    assert (us.kwargs, us.tz) == ({"region": "us", "full": True}, "America/New_York")
    assert "sync" not in registry.crons and "sync" not in registry.jobs


def test_an_argument_less_cron_keeps_its_name_and_utc() -> None:
    registry = load_registry(make_settings("redis://unused"))
    heartbeat = registry.crons["record_heartbeat"]
    assert (heartbeat.name, heartbeat.kwargs, heartbeat.tz) == ("record_heartbeat", {}, None)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"kwargs": {"region": "eu", "speed": 3}}, r"'bad' of sync_region: kwargs do not fit .*speed: Extra inputs"),
        ({"kwargs": {}}, r"kwargs do not fit its signature \(region: Field required\)"),
        ({"kwargs": {"region": "eu"}, "tz": "Mars/Olympus"}, r"unknown time zone 'Mars/Olympus'"),
        ({"kwargs": {"region": "eu"}, "name": "no/slash"}, r"a name is 1-100 letters"),
    ],
)
def test_a_bad_schedule_stops_start_up_with_one_line(options: dict[str, Any], message: str) -> None:
    module = types.ModuleType("tests_cron_bad_schedule")

    async def sync_region(ctx: JobContext, region: str, full: bool = False) -> None:
        """Sync one region."""

    module.sync_region = cron(second=0, **{"name": "bad", **options})(sync_region)  # type: ignore[attr-defined]
    sys.modules[module.__name__] = module
    try:
        with pytest.raises(SettingsError, match=message) as raised:
            load_registry(make_settings("redis://unused", job_modules=[module.__name__]))
    finally:
        del sys.modules[module.__name__]
    assert str(raised.value).startswith("invalid cron schedule") and "\n" not in str(raised.value)


def test_two_schedules_of_one_function_need_names() -> None:
    async def twice(ctx: JobContext) -> None:
        """Runs twice a day."""

    cron(hour=1)(cron(hour=13)(twice))
    with pytest.raises(CronScheduleError, match="twice has 2 cron schedules: give each one a name="):
        Registry().add(twice)


# --- workers, Redis and the API -------------------------------------------------------------------------------


@pytest.fixture
def ledger() -> list[tuple[str, str, int]]:
    """What the scheduled function saw: (region, job id, worker pid-ish id), kept outside Redis."""
    return []


@pytest.fixture
def regions(registry: Registry, ledger: list[tuple[str, str, int]]) -> Registry:
    """Two every-second schedules of one function, one in Paris time with region=eu, one in UTC with us."""

    async def record_region(ctx: JobContext, region: str) -> None:
        """Write down which region a tick was for."""
        ledger.append((region, ctx["job_id"], id(ctx["redis"])))

    registry.cron(second=None, kwargs={"region": "eu"}, tz="Europe/Paris", name="tick_eu")(record_region)
    registry.cron(second=None, kwargs={"region": "us"}, name="tick_us")(record_region)
    return registry


@asynccontextmanager
async def two_workers(settings: Settings, registry: Registry) -> AsyncIterator[list[PlatformWorker]]:
    crons = [arq_cron_job(spec, settings) for spec in registry.crons.values() if spec.name.startswith("tick_")]
    workers = [build_worker(settings, registry, cron_jobs=crons) for _ in range(2)]
    for worker in workers:
        worker.cron_jobs = [arq_cron_job(registry.crons[c.name], settings) for c in crons]  # each its own state
    tasks = [asyncio.create_task(worker.async_run()) for worker in workers]
    try:
        yield workers
    finally:
        for worker in workers:
            worker.handle_sig(Signals.SIGINT)
        await asyncio.gather(*tasks, return_exceptions=True)
        for worker in workers:
            await worker.close()


def tick_ids(ledger: list[tuple[str, str, int]], region: str) -> list[str]:
    return [job_id for r, job_id, _ in ledger if r == region and job_id.startswith("platform:cron:")]


def tick_s(job_id: str) -> float:
    return int(job_id.rpartition(":")[2]) / 1000


async def test_each_schedule_runs_once_per_tick_across_two_workers_with_its_kwargs(
    client: httpx.AsyncClient, settings: Settings, regions: Registry, ledger: list[tuple[str, str, int]]
) -> None:
    async with two_workers(settings, regions):
        await wait_for(lambda: asyncio.sleep(0, ledger), lambda seen: len(tick_ids(seen, "eu")) >= 4, timeout=10)
    eu, us = tick_ids(ledger, "eu"), tick_ids(ledger, "us")
    assert len(eu) == len(set(eu)) and len(us) == len(set(us)), "a tick ran twice"
    assert all(job_id.startswith(keys.cron_tick_job_id("tick_eu", 0)[:-1]) for job_id in eu)
    assert all(job_id.startswith(keys.cron_tick_job_id("tick_us", 0)[:-1]) for job_id in us)
    seconds = sorted(int(tick_s(job_id)) for job_id in eu)
    assert seconds == list(range(seconds[0], seconds[-1] + 1)), "a tick was skipped"
    views = {c["name"]: c for c in (await client.get("/v1/cron")).json()}
    eu_view = views["tick_eu"]
    assert (eu_view["function"], eu_view["tz"]) == ("record_region", "Europe/Paris")
    assert eu_view["kwargs"] == {"region": "eu"}
    assert eu_view["paused"] is False and eu_view["next_run"] is not None
    assert eu_view["last_run"]["job_id"] in eu and eu_view["missed_runs"] == 0
    assert views["tick_us"]["tz"] == "UTC"


async def test_pause_stops_ticks_on_every_worker_and_resume_restarts_them(
    client: httpx.AsyncClient, settings: Settings, regions: Registry, ledger: list[tuple[str, str, int]]
) -> None:
    async with two_workers(settings, regions):
        await wait_for(lambda: asyncio.sleep(0, ledger), lambda seen: len(tick_ids(seen, "eu")) >= 2)
        paused = await client.post("/v1/cron/tick_eu/pause")
        paused_at = time.time()
        assert paused.status_code == 200, paused.text
        assert paused.json()["paused"] is True and paused.json()["next_run"] is None
        again = await client.post("/v1/cron/tick_eu/pause")
        assert again.json()["paused_at"] == paused.json()["paused_at"]  # pausing twice keeps the first time
        # Ticks already queued (at most 1 s ahead) still run; then none, while the other schedule goes on.
        us_at_pause = len(tick_ids(ledger, "us"))
        await wait_for(lambda: asyncio.sleep(0, ledger), lambda seen: len(tick_ids(seen, "us")) >= us_at_pause + 4)
        late = [job_id for job_id in tick_ids(ledger, "eu") if tick_s(job_id) > paused_at + 1.2]
        assert late == []
        view = {c["name"]: c for c in (await client.get("/v1/cron")).json()}["tick_eu"]
        assert view["paused"] is True and view["missed_runs"] == 0  # paused ticks are not missed
        resumed = await client.post("/v1/cron/tick_eu/resume")
        resumed_at = time.time()
        assert resumed.status_code == 200 and resumed.json()["paused"] is False
        assert resumed.json()["next_run"] is not None
        await wait_for(
            lambda: asyncio.sleep(0, ledger),
            lambda seen: sum(1 for job_id in tick_ids(seen, "eu") if tick_s(job_id) > resumed_at) >= 2,
        )
    await asyncio.sleep(0)
    views = {c["name"]: c for c in (await client.get("/v1/cron")).json()}
    assert views["tick_eu"]["missed_runs"] == 0, views["tick_eu"]


async def test_run_now_runs_once_with_the_schedules_kwargs_and_takes_no_ticks_place(
    client: httpx.AsyncClient,
    settings: Settings,
    regions: Registry,
    ledger: list[tuple[str, str, int]],
    redis: ArqRedis,
) -> None:
    await client.post("/v1/cron/tick_eu/pause")  # run-now works on a paused schedule too
    async with two_workers(settings, regions):
        accepted = await client.post("/v1/cron/tick_eu/run")
        assert accepted.status_code == 202, accepted.text
        body = accepted.json()
        assert accepted.headers["location"] == f"/v1/jobs/{body['job_id']}"
        assert body["function"] == "tick_eu" and body["job_id"].startswith("platform:cron-run:tick_eu:")
        done = await wait_for(
            lambda: client.get(f"/v1/jobs/{body['job_id']}"), lambda r: r.json()["status"] == "complete"
        )
        assert done.json()["kwargs"] == {"region": "eu"}
        await wait_for(lambda: asyncio.sleep(0, ledger), lambda seen: len(tick_ids(seen, "us")) >= 3)
    runs = [(region, job_id) for region, job_id, _ in ledger if job_id == body["job_id"]]
    assert runs == [("eu", body["job_id"])]  # once, with the schedule's kwargs
    assert tick_ids(ledger, "eu") == []  # paused: no tick ran, and the run-now was not a tick
    view = {c["name"]: c for c in (await client.get("/v1/cron")).json()}["tick_eu"]
    assert view["last_run"]["job_id"] == body["job_id"] and view["last_run"]["status"] == "complete"
    assert await redis.zcard(keys.cron_ticks("tick_eu")) == 0  # not recorded as a tick


async def test_unknown_schedule_is_404_in_the_one_error_shape(client: httpx.AsyncClient) -> None:
    for action in ("pause", "resume", "run"):
        response = await client.post(f"/v1/cron/no_such_schedule/{action}")
        assert response.status_code == 404
        problem = {"loc": ["path", "name"], "msg": "no cron schedule named 'no_such_schedule'", "type": "not_found"}
        assert response.json() == {"detail": [problem]}


@pytest.fixture
async def keyed(redis_server: Any, redis: ArqRedis) -> AsyncIterator[httpx.AsyncClient]:
    from tests.support.keys import ADMIN, ENQUEUER, READER
    from tests.test_auth import client_for

    settings = make_settings(redis_server.url, api_keys=[ADMIN, ENQUEUER, READER])
    async with client_for(settings) as client:
        yield client


async def test_pause_resume_and_run_need_the_admin_scope(keyed: httpx.AsyncClient, redis: ArqRedis) -> None:
    for action in ("pause", "resume", "run"):
        path = f"/v1/cron/prune_stale_records/{action}"
        assert (await keyed.post(path)).status_code == 401
        for key in (READ_KEY, ENQUEUE_KEY):
            assert (await keyed.post(path, headers=bearer(key))).status_code == 403, (action, key)
    assert not await redis.hexists(keys.CRON_PAUSED, "prune_stale_records")
    assert (await keyed.post("/v1/cron/prune_stale_records/pause", headers=bearer(ADMIN_KEY))).status_code == 200
    views = {c["name"]: c for c in (await keyed.get("/v1/cron", headers=bearer(READ_KEY))).json()}
    assert views["prune_stale_records"]["paused"] is True
    assert (await keyed.post("/v1/cron/prune_stale_records/run", headers=bearer(ADMIN_KEY))).status_code == 202


async def test_the_cron_operations_are_documented(client: httpx.AsyncClient) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]
    for action, operation_id in (("pause", "pause_cron"), ("resume", "resume_cron"), ("run", "run_cron_now")):
        operation = paths[f"/v1/cron/{{name}}/{action}"]["post"]
        assert operation["operationId"] == operation_id
        assert operation["x-required-scope"] == "admin"
        assert {"401", "403", "404", "503"} <= set(operation["responses"])
