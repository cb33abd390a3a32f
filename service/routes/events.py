"""`/v1/jobs/{id}/events` and `/v1/events`: job events as Server-Sent Events, live from the process's event
hub, replayed from Redis for a client that reconnects with `Last-Event-ID` (service/sse.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Annotated, Any

from arq.connections import ArqRedis
from fastapi import APIRouter, Header, Query

from core import events
from core.events import Event
from core.status import Presence, job_presence
from service.deps import EventHubDep, PoolDep, PrincipalDep, RegistryDep, SettingsDep, WaitSlotsDep
from service.errors import ApiError, PlatformRoute
from service.event_hub import Gap, Subscription
from service.limits import WAIT_RETRY_AFTER_S, TooManyWaits, WaitSlots
from service.sse import (
    KEEPALIVE,
    LAST_EVENT_ID_LOC,
    REPLAY_PAGE,
    EventStream,
    Follower,
    frame,
    read_range,
    stream_end,
    valid_entry_id,
)
from service.waiting import JOB_ID_LOC

router = APIRouter(tags=["events"], route_class=PlatformRoute)

_STREAM_DOC = (
    "`text/event-stream`: one event per change, `id:` its stream entry id, `event:` its name, `data:` "
    "`{job_id, function, event, data}` as JSON; a `: keep-alive` comment every SSE_KEEPALIVE_SECONDS."
)
STREAM_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {"description": _STREAM_DOC, "content": {"text/event-stream": {"schema": {"type": "string"}}}}
}
LastEventId = Annotated[
    str | None,
    Header(
        alias="Last-Event-ID",
        description="Resume after this event id (`<ms>-<seq>`, as sent in `id:`); browsers send it on reconnect.",
    ),
]


def _last_event_id(value: str | None) -> str | None:
    if value is not None and not valid_entry_id(value):
        raise ApiError(422, "Last-Event-ID must be an event id as sent in `id:` (`<ms>-<seq>`)", loc=LAST_EVENT_ID_LOC)
    return value


async def _held_slot(waits: WaitSlots, name: str) -> AsyncExitStack:
    """A stack holding one of the key's wait slots (429 when none is left); closing it gives the slot back."""
    try:
        waits.take(name)
    except TooManyWaits as exc:
        retry = {"Retry-After": str(WAIT_RETRY_AFTER_S)}
        raise ApiError(429, str(exc), type_="too_many_waits", headers=retry) from None
    stack = AsyncExitStack()
    stack.callback(waits.give_back, name)
    return stack


async def _job_frames(
    pool: ArqRedis, subscription: Subscription, follower: Follower, replayed: list[Event], done: bool
) -> AsyncIterator[bytes]:
    for event in replayed:
        yield frame(event)
    if done:
        return
    stream = events.job_stream(subscription.job_id or "")
    while not subscription.overflowed:
        item = await follower.next()
        if item is None:
            yield KEEPALIVE
            continue
        found = await read_range(pool, stream, follower.last_id) if isinstance(item, Gap) else [item]
        for event in follower.emit(found):
            yield frame(event)
            if event.event.terminal:
                return


@router.get(
    "/v1/jobs/{job_id}/events",
    response_class=EventStream,
    status_code=200,
    responses={**STREAM_RESPONSE, 404: {"description": "No job with this id, and no events of one"}},
)
async def stream_job_events(
    job_id: str,
    pool: PoolDep,
    hub: EventHubDep,
    settings: SettingsDep,
    waits: WaitSlotsDep,
    principal: PrincipalDep,
    last_event_id: LastEventId = None,
) -> EventStream:
    """The job's events as Server-Sent Events: its history (or what followed `Last-Event-ID`), then each change
    as it happens; the stream ends after the job's terminal event (complete, failed, dead or aborted)."""
    after = _last_event_id(last_event_id)
    resources = await _held_slot(waits, principal.name)
    try:
        subscription = await resources.enter_async_context(hub.subscribe(job_id=job_id))
        presence = await job_presence(pool, settings.queue_name, job_id)  # before the replay: see _job_frames
        history = await read_range(pool, events.job_stream(job_id), None)
        if presence is Presence.missing and not history:
            raise ApiError(404, f"no job with id {job_id!r}", loc=JOB_ID_LOC)
        follower = Follower(subscription, after, settings.sse_keepalive_seconds)
        replayed = follower.emit(history)
        # Ended: its last event is terminal, or it finished (or is gone) before the replay, so the replay holds
        # everything it will ever say.
        done = bool(history and history[-1].event.terminal) or presence is not Presence.pending
        return EventStream(_job_frames(pool, subscription, follower, replayed, done), resources)
    except BaseException:
        await resources.aclose()
        raise


async def _feed_frames(
    pool: ArqRedis, subscription: Subscription, follower: Follower, function: str | None, replay: bool
) -> AsyncIterator[bytes]:
    if replay:
        for event in follower.emit(await read_range(pool, events.STREAM, follower.last_id, function, REPLAY_PAGE)):
            yield frame(event)
    while not subscription.overflowed:  # a client that fell behind by a buffer's worth resumes by Last-Event-ID
        item = await follower.next()
        if item is None:
            yield KEEPALIVE
            continue
        if isinstance(item, Gap):
            found = await read_range(pool, events.STREAM, follower.last_id, function, REPLAY_PAGE)
        else:
            found = [item]
        for event in follower.emit(found):
            yield frame(event)


@router.get("/v1/events", response_class=EventStream, status_code=200, responses=STREAM_RESPONSE)
async def stream_events(
    pool: PoolDep,
    hub: EventHubDep,
    registry: RegistryDep,
    settings: SettingsDep,
    waits: WaitSlotsDep,
    principal: PrincipalDep,
    function: Annotated[str | None, Query(description="Only the events of jobs of this function.")] = None,
    last_event_id: LastEventId = None,
) -> EventStream:
    """Every job's events, platform-wide, as Server-Sent Events (the dashboard's live feed): from now on, or
    from after `Last-Event-ID` while the platform-wide stream still holds it. It never ends by itself."""
    if function is not None and function not in registry.jobs:
        raise ApiError(422, f"no function named {function!r} is registered", loc=("query", "function"),
                       type_="unknown_function")  # fmt: skip
    after = _last_event_id(last_event_id)
    resources = await _held_slot(waits, principal.name)
    try:
        subscription = await resources.enter_async_context(hub.subscribe(function=function))
        # Without Last-Event-ID the feed starts now: after the stream's last entry (the hub may not be there yet).
        start = after or await stream_end(pool)
        follower = Follower(subscription, start, settings.sse_keepalive_seconds)
        return EventStream(_feed_frames(pool, subscription, follower, function, after is not None), resources)
    except BaseException:
        await resources.aclose()
        raise
