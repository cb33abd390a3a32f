"""Waiting for a job to finish without polling: subscribe to its events on the process's hub, read the job once,
then sleep until its terminal event arrives and read it once more. A wait costs two reads, however long. (A job
run by a worker that publishes no events is noticed by the hub's sweep, one command a second per process.)"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

from arq.connections import ArqRedis
from starlette.requests import Request

from core.status import JobRecord, read_job
from service.errors import ApiError
from service.event_hub import EventHub, Gap
from settings import Settings

JOB_ID_LOC = ("path", "job_id")
T = TypeVar("T")


async def _client_left(request: Request) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def unless_client_leaves(request: Request, work: Coroutine[Any, Any, T]) -> T | None:
    """What `work` returns, or None as soon as the client has gone: nobody would read the answer, so the wait
    (its slot, its subscription) is dropped at once rather than when the job ends."""
    waiting = asyncio.ensure_future(work)
    gone = asyncio.ensure_future(_client_left(request))
    try:
        await asyncio.wait((waiting, gone), return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (waiting, gone):
            task.cancel()
    if not waiting.done() or waiting.cancelled():
        return None
    return waiting.result()


async def record_or_404(pool: ArqRedis, settings: Settings, job_id: str) -> JobRecord:
    record = await read_job(pool, settings.queue_name, job_id)
    if record is None:
        raise ApiError(404, f"no job with id {job_id!r}", loc=JOB_ID_LOC)
    return record


async def wait_until_finished(
    pool: ArqRedis, hub: EventHub, settings: Settings, job_id: str, wait_s: float
) -> JobRecord:
    """The job once it finishes, or as it is when `wait_s` passes; 404 when there is no such job.

    Subscribed before the first read, so a terminal event written after that read cannot be missed. A terminal
    event (or a gap in what the hub can vouch for) triggers a read; a job that is not finished by then (an abort
    that is still cancelling it) is waited for again. At the deadline the job is read once more, so the answer is
    never older than the wait."""
    async with hub.subscribe(job_id=job_id, wants_result=True) as events:
        record = await record_or_404(pool, settings, job_id)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        while not record.status.finished:
            try:
                async with asyncio.timeout_at(deadline):
                    while True:
                        item = await events.next()
                        if isinstance(item, Gap) or item.event.terminal or events.overflowed:
                            break
            except TimeoutError:
                return await record_or_404(pool, settings, job_id)
            record = await record_or_404(pool, settings, job_id)
    return record
