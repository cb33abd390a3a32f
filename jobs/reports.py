"""Reports: a long job that reports its progress, visible in `GET /v1/jobs/{id}` while it runs."""

from __future__ import annotations

import asyncio
import hashlib
from typing import Annotated

from pydantic import BaseModel, Field

from core.context import JobContext
from core.progress import report_progress
from core.registry import job

SECONDS_PER_ROW = 0.002
CHUNKS = 10


class Report(BaseModel):
    report_id: str
    rows: int
    checksum: str


@job(timeout=600, max_tries=3)
async def generate_report(
    ctx: JobContext,
    report_id: Annotated[str, Field(min_length=1, max_length=128)],
    rows: Annotated[int, Field(ge=1, le=1_000_000)],
) -> Report:
    """Build a report of `rows` rows (about 2 ms a row), reporting progress after each tenth."""
    digest = hashlib.sha256(report_id.encode())
    done = 0
    for chunk in range(CHUNKS):
        size = rows // CHUNKS + (1 if chunk < rows % CHUNKS else 0)
        await asyncio.sleep(size * SECONDS_PER_ROW)
        digest.update(f"{chunk}:{size}".encode())
        done += size
        await report_progress(ctx, done, rows, f"{done} of {rows} rows")
    return Report(report_id=report_id, rows=rows, checksum=digest.hexdigest()[:16])
