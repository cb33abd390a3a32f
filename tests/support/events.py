"""Job events for the tests: written the way the scripts write them (core/events.py), and SSE read back."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
from redis.asyncio import Redis

from core import events


async def add_event(redis: Redis, job_id: str, function: str, name: str, data: dict[str, Any] | None = None) -> str:
    """Append one event to the platform-wide stream and the job's own, with the same id; returns the id."""
    fields = {"job_id": job_id, "function": function, "event": name, "data": json.dumps(data or {})}
    entry_id = await redis.xadd(events.STREAM, fields)  # type: ignore[arg-type]
    await redis.xadd(events.job_stream(job_id), fields, id=entry_id)  # type: ignore[arg-type]
    return entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)


@dataclass
class Frame:
    """One SSE block: an event (id, event, data) or a comment."""

    id: str | None = None
    event: str | None = None
    data: dict[str, Any] | None = None
    comment: str | None = None


def _frame(lines: list[str]) -> Frame:
    frame = Frame()
    for line in lines:
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "":
            frame.comment = value
        elif name == "id":
            frame.id = value
        elif name == "event":
            frame.event = value
        elif name == "data":
            frame.data = json.loads(value)
    return frame


def parse(body: str) -> list[Frame]:
    return [_frame(block.split("\n")) for block in body.split("\n\n") if block.strip()]


async def frames(response: httpx.Response) -> AsyncIterator[Frame]:
    """The frames of a streaming response as they arrive."""
    lines: list[str] = []
    async for line in response.aiter_lines():
        if line:
            lines.append(line)
        elif lines:
            yield _frame(lines)
            lines = []
