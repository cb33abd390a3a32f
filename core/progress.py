"""Progress a running job reports, stored in Redis so `GET /v1/jobs/{id}` can show it."""

from __future__ import annotations

import time
from typing import Any

from core import codec, keys
from core.context import JobContext

PROGRESS_TTL_S = 7 * 86_400


async def report_progress(ctx: JobContext, done: float, total: float | None = None, message: str = "") -> None:
    """Record how far the current job is; `percent` is derived when `total` is given."""
    percent = round(100 * done / total, 1) if total else None
    record: dict[str, Any] = {"done": done, "total": total, "percent": percent, "message": message}
    record["updated_at"] = time.time()
    await ctx["redis"].set(keys.progress(ctx["job_id"]), codec.dumps(record), ex=PROGRESS_TTL_S)


def parse_progress(raw: bytes | None) -> dict[str, Any] | None:
    if raw is None:
        return None
    try:
        value = codec.loads(raw)
    except ValueError:  # not ours (never unpickled): show no progress rather than fail the read
        return None
    return value if isinstance(value, dict) else None
