"""`/v1/cron`: every schedule with its next run and its last recorded run; pause, resume and run one now."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

from fastapi import APIRouter, Response

from core import cron_pause, cron_ticks, keys
from core.cron_pause import PauseState
from core.cron_runs import CronRuns, read_runs
from core.enqueue import enqueue
from core.registry import CronSpec, Registry
from core.status import JobState
from service.deps import PoolDep, RegistryDep
from service.errors import ApiError, PlatformRoute
from service.models import CronRunView, CronView, JobAccepted

router = APIRouter(prefix="/v1/cron", tags=["cron"], route_class=PlatformRoute)

# A tick counts as missed once it is this far in the past with no run recorded for it.
MISSED_AFTER = timedelta(seconds=5)
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "No cron schedule with this name"}}


def _when(epoch_s: float | None) -> datetime | None:
    return datetime.fromtimestamp(epoch_s, UTC) if epoch_s is not None else None


def _last_run(runs: CronRuns) -> CronRunView | None:
    if runs.last_job_id is None and runs.last_started_at is None:
        return None
    return CronRunView(
        job_id=runs.last_job_id,
        started_at=_when(runs.last_started_at),
        finished_at=_when(runs.last_finished_at),
        status=runs.last_status or "in_progress",
        duration_s=runs.last_duration_s,
        error=runs.last_error,
        runs=runs.runs,
    )


def _schedule(schedule: dict[str, Any]) -> dict[str, Any]:
    return {k: sorted(v) if isinstance(v, set) else v for k, v in schedule.items() if v is not None}


def _spec(registry: Registry, name: str) -> CronSpec:
    spec = registry.crons.get(name)
    if spec is None:
        raise ApiError(404, f"no cron schedule named {name!r}", loc=("path", "name"))
    return spec


def _view(spec: CronSpec, runs: CronRuns, pause: PauseState, now: datetime) -> CronView:
    ran_s = frozenset(tick // 1000 for tick in runs.ran_ticks_ms)
    spans = pause.spans(now.timestamp())
    missed, last_missed = cron_ticks.missed(spec.schedule, ran_s, now - MISSED_AFTER, spec.zone, spans)
    next_run = None if pause.paused else cron_ticks.next_tick(spec.schedule, spec.zone, now)
    return CronView(
        name=spec.name,
        function=spec.function_name,
        description=spec.description,
        schedule=_schedule(spec.schedule),
        tz=spec.tz or "UTC",
        kwargs=spec.kwargs,
        paused=pause.paused,
        paused_at=_when(pause.paused_at),
        next_run=next_run.replace(microsecond=0) if next_run else None,
        last_run=_last_run(runs),
        missed_runs=missed,
        last_missed_at=last_missed,
    )


async def _views(pool: PoolDep, specs: list[CronSpec]) -> list[CronView]:
    names = [spec.name for spec in specs]
    runs = await read_runs(pool, names)
    pauses = await cron_pause.read_states(pool, names)
    now = datetime.now(UTC).replace(microsecond=0)
    return [_view(spec, runs[spec.name], pauses[spec.name], now) for spec in specs]


@router.get("")
async def list_cron(pool: PoolDep, registry: RegistryDep) -> list[CronView]:
    """Cron schedules: fields and time zone, kwargs, whether paused, next run and last run."""
    return await _views(pool, sorted(registry.crons.values(), key=lambda s: s.name))


@router.post("/{name}/pause", responses=NOT_FOUND)
async def pause_cron(name: str, pool: PoolDep, registry: RegistryDep) -> CronView:
    """Stop enqueueing the schedule's ticks, on every worker, until it is resumed (a tick already queued
    still runs). Pausing a paused schedule changes nothing."""
    spec = _spec(registry, name)
    await cron_pause.pause(pool, name)
    (view,) = await _views(pool, [spec])
    return view


@router.post("/{name}/resume", responses=NOT_FOUND)
async def resume_cron(name: str, pool: PoolDep, registry: RegistryDep) -> CronView:
    """Enqueue the schedule's ticks again from its next tick; the ticks that fell in the pause are not run
    and not counted as missed. Resuming a running schedule changes nothing."""
    spec = _spec(registry, name)
    await cron_pause.resume(pool, name)
    (view,) = await _views(pool, [spec])
    return view


@router.post("/{name}/run", status_code=202, responses=NOT_FOUND)
async def run_cron_now(name: str, pool: PoolDep, registry: RegistryDep, response: Response) -> JobAccepted:
    """Enqueue one run of the schedule now, with its kwargs, under its own job id (not a tick's: it never
    takes the place of a tick). A paused schedule can be run this way too."""
    spec = _spec(registry, name)
    job_id = keys.cron_run_now_job_id(name, f"{int(time.time() * 1000)}-{uuid4().hex[:12]}")
    accepted = await enqueue(pool, spec.as_job(), spec.kwargs, job_id=job_id)
    response.headers["Location"] = f"/v1/jobs/{accepted.job_id}"
    return JobAccepted(
        job_id=accepted.job_id,
        function=spec.name,
        status=JobState.queued,
        enqueued_at=accepted.enqueued_at,
        scheduled_at=accepted.scheduled_at,
    )
