"""`/v1/cron`: every schedule with its next run and its last recorded run."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from arq.cron import next_cron
from fastapi import APIRouter

from core.cron_runs import read_runs
from service.deps import PoolDep, RegistryDep
from service.models import CronRunView, CronView

router = APIRouter(prefix="/v1/cron", tags=["cron"])

# A tick counts as missed once it is this far in the past with no run recorded for it.
MISSED_AFTER = timedelta(seconds=5)
# Each counted tick is a `next_cron` step on the event loop; past this many the count stops ("at least").
MAX_MISSED_COUNTED = 1_000


def _when(value: str | None) -> datetime | None:
    return datetime.fromtimestamp(float(value), UTC) if value else None


def _last_run(row: dict[str, str]) -> CronRunView | None:
    if not row:
        return None
    return CronRunView(
        job_id=row.get("last_job_id"),
        started_at=_when(row.get("last_started_at")),
        finished_at=_when(row.get("last_finished_at")),
        status=row.get("last_status") or "in_progress",
        duration_s=float(row["last_duration_s"]) if row.get("last_duration_s") else None,
        error=row.get("last_error") or None,
        runs=int(row.get("runs", 0)),
    )


def _last_tick(row: dict[str, str]) -> datetime | None:
    """The tick the last run was for: arq names a cron job `<name>:<tick in unix ms>`."""
    job_id = row.get("last_job_id") or ""
    _, _, tick_ms = job_id.rpartition(":")
    return datetime.fromtimestamp(int(tick_ms) / 1000, UTC) if tick_ms.isdigit() else None


def _missed(schedule: dict[str, Any], last_tick: datetime | None, now: datetime) -> tuple[int, datetime | None]:
    """Ticks that came due after the last recorded run and never ran (no worker was up, for example)."""
    if last_tick is None:
        return 0, None
    cutoff = now - MISSED_AFTER
    missed, latest, tick = 0, None, next_cron(last_tick, **schedule)
    while tick <= cutoff and missed < MAX_MISSED_COUNTED:
        missed, latest = missed + 1, tick
        tick = next_cron(tick, **schedule)
    if tick <= cutoff:  # capped: find the latest missed tick from a window widening back from the cutoff
        window = timedelta(seconds=1)
        while (tick := next_cron(max(cutoff - window, last_tick), **schedule)) > cutoff:
            window *= 2
        while tick <= cutoff:
            latest, tick = tick, next_cron(tick, **schedule)
    return missed, latest


def _schedule(schedule: dict[str, Any]) -> dict[str, Any]:
    return {k: sorted(v) if isinstance(v, set) else v for k, v in schedule.items() if v is not None}


@router.get("")
async def list_cron(pool: PoolDep, registry: RegistryDep) -> list[CronView]:
    """Cron jobs, their schedule (arq cron fields, UTC), next run and last run."""
    specs = sorted(registry.crons.values(), key=lambda s: s.name)
    runs = await read_runs(pool, [spec.name for spec in specs])
    now = datetime.now(UTC)
    views = []
    for spec in specs:
        missed, last_missed = _missed(spec.schedule, _last_tick(runs[spec.name]), now)
        views.append(
            CronView(
                name=spec.name,
                description=spec.description,
                schedule=_schedule(spec.schedule),
                next_run=next_cron(now, **spec.schedule),  # type: ignore[arg-type]
                last_run=_last_run(runs[spec.name]),
                missed_runs=missed,
                last_missed_at=last_missed,
            )
        )
    return views
