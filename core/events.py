"""Job events: every change of a job's state is appended to Redis streams by the script that makes the change
(core/lua/_events.lua), so events cost no extra round trip and cannot disagree with the state.

Layout, the contract between the scripts (writers) and the API's event hub (reader):
- `platform:events`: the platform-wide stream, `XADD ... MAXLEN ~ EVENTS_MAX`; any API replica follows it
  with one blocking `XREAD` connection and fans it out to its waiters and SSE streams.
- `platform:events:<job id>`: the job's own bounded history (`MAXLEN ~ JOB_EVENTS_MAX`), each entry added
  with the same id as its copy in the platform-wide stream, expiring with the job's records; a client that
  reconnects with `Last-Event-ID` is replayed from here.
- Every entry has the fields `job_id`, `function`, `event` (one of EventName) and `data` (a JSON object:
  details of the change, `{}` when there are none; see EventName).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

STREAM = "platform:events"
JOB_STREAM_PREFIX = "platform:events:"
EVENTS_MAX = 100_000
JOB_EVENTS_MAX = 200
# How long a job's events are kept after it ends when it keeps no result (nothing else of it is kept).
UNSTORED_EVENTS_PX = 60_000


class EventName(StrEnum):
    """What changed; `data` carries, per event:
    queued / deferred: `scheduled_at` (ms), `enqueued_at` (ms); started: `try`;
    progress: `done`, `total`, `percent`, `message`; retrying: `try`, `retry_at` (ms), `error` ({type, message,
    kind}); failed / dead: `try`, `error`; complete: `try`; aborted: `try` when its worker ended it;
    requeued: `scheduled_at` (ms) when known; limited (passed over for its function's limit, core/job_limits.py):
    `on` (rate_limit or concurrency); pending (a chain's child, enqueued with its parent): `parent`;
    not_run (a child whose parent failed for good, died or was aborted): `parent`, `reason`. A child enqueued
    when its parent succeeded is `queued` with `parent`."""

    queued = "queued"
    deferred = "deferred"
    started = "started"
    progress = "progress"
    retrying = "retrying"
    complete = "complete"
    failed = "failed"
    dead = "dead"
    aborted = "aborted"
    requeued = "requeued"
    limited = "limited"
    pending = "pending"
    not_run = "not_run"

    @property
    def terminal(self) -> bool:
        """The job's last event: nothing follows it unless the job is requeued from the dead letters."""
        return self in (EventName.complete, EventName.failed, EventName.dead, EventName.aborted, EventName.not_run)


def job_stream(job_id: str) -> str:
    return JOB_STREAM_PREFIX + job_id


@dataclass(frozen=True)
class Event:
    """One entry of an event stream, as read back."""

    id: str
    job_id: str
    function: str
    event: EventName
    data: dict[str, Any] = field(default_factory=dict)


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def parse(entry_id: bytes | str, fields: dict[bytes, bytes] | dict[str, str]) -> Event | None:
    """An entry as an Event; None for one that does not fit the layout (a stray write is skipped)."""
    values = {_text(k): _text(v) for k, v in fields.items()}
    try:
        name = EventName(values.get("event", ""))
        data = json.loads(values.get("data") or "{}")
    except ValueError:
        return None
    if not isinstance(data, dict) or "job_id" not in values:
        return None
    return Event(_text(entry_id), values["job_id"], values.get("function", ""), name, data)
