"""Progress a running job reports, stored in Redis so `GET /v1/jobs/{id}` can show it. Read defensively: a
value that is not a progress record shows as no progress, never an error."""

from __future__ import annotations

import time

import structlog
from pydantic import BaseModel, ConfigDict, ValidationError

from core import codec, keys
from core.context import JobContext
from core.scripts import scripts

log = structlog.get_logger("core")
PROGRESS_TTL_S = 7 * 86_400


class Progress(BaseModel):
    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)

    done: int | float
    total: int | float | None = None
    percent: float | None = None
    message: str = ""
    updated_at: float | None = None


async def report_progress(ctx: JobContext, done: float, total: float | None = None, message: str = "") -> None:
    """Record how far the current job is and publish it (a `progress` event), in one call; `percent` is
    derived when `total` is given."""
    percent = round(100 * done / total, 1) if total else None
    record = Progress(done=done, total=total, percent=percent, message=message, updated_at=time.time())
    job_id = ctx["job_id"]
    data = codec.dumps(record.model_dump(exclude={"updated_at"}))
    args: list[str | bytes | int] = [job_id, ctx.get("function", ""), codec.dumps(record), PROGRESS_TTL_S, data]
    await scripts(ctx["redis"]).progress(keys=[keys.progress(job_id)], args=args)


def parse_progress(raw: bytes | None) -> Progress | None:
    if raw is None:
        return None
    try:
        return Progress.model_validate(codec.loads(raw))
    except (ValueError, TypeError, ValidationError):
        log.warning("record.malformed", record="progress")
        return None
