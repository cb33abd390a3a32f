"""`/v1/cron`: every schedule with its next run and its last recorded run."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from arq.cron import next_cron
from fastapi import APIRouter

from core import cron_ticks
from core.cron_runs import CronRuns, read_runs
from service.deps import PoolDep, RegistryDep
from service.errors import PlatformRoute
from service.models import CronRunView, CronView

router = APIRouter(prefix="/v1/cron", tags=["cron"], route_class=PlatformRoute)

# A tick counts as missed once it is this far in the past with no run recorded for it.
MISSED_AFTER = timedelta(seconds=5)


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


@router.get("")
async def list_cron(pool: PoolDep, registry: RegistryDep) -> list[CronView]:
    """Cron jobs, their schedule (arq cron fields, UTC), next run and last run."""
    specs = sorted(registry.crons.values(), key=lambda s: s.name)
    runs = await read_runs(pool, [spec.name for spec in specs])
    now = datetime.now(UTC).replace(microsecond=0)
    views = []
    for spec in specs:
        ran_s = frozenset(tick // 1000 for tick in runs[spec.name].ran_ticks_ms)
        missed, last_missed = cron_ticks.missed(spec.schedule, ran_s, now - MISSED_AFTER)
        views.append(
            CronView(
                name=spec.name,
                description=spec.description,
                schedule=_schedule(spec.schedule),
                next_run=next_cron(now, **spec.schedule).replace(microsecond=0),  # type: ignore[arg-type]
                last_run=_last_run(runs[spec.name]),
                missed_runs=missed,
                last_missed_at=last_missed,
            )
        )
    return views
