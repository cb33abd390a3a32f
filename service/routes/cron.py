"""`/v1/cron`: every schedule with its next run and its last recorded run."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from arq.cron import next_cron
from fastapi import APIRouter

from core.cron_runs import read_runs
from service.deps import PoolDep, RegistryDep
from service.models import CronRunView, CronView

router = APIRouter(prefix="/v1/cron", tags=["cron"])


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


def _schedule(schedule: dict[str, Any]) -> dict[str, Any]:
    return {k: sorted(v) if isinstance(v, set) else v for k, v in schedule.items() if v is not None}


@router.get("")
async def list_cron(pool: PoolDep, registry: RegistryDep) -> list[CronView]:
    """Cron jobs, their schedule (arq cron fields, UTC), next run and last run."""
    specs = sorted(registry.crons.values(), key=lambda s: s.name)
    runs = await read_runs(pool, [spec.name for spec in specs])
    now = datetime.now(UTC)
    return [
        CronView(
            name=spec.name,
            description=spec.description,
            schedule=_schedule(spec.schedule),
            next_run=next_cron(now, **spec.schedule),  # type: ignore[arg-type]
            last_run=_last_run(runs[spec.name]),
        )
        for spec in specs
    ]
