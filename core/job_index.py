"""Job indexes for `GET /v1/jobs`: the scripts that change a job's state (core/lua/_index.lua) move its id
between bounded sorted sets in the same call, so search needs no `KEYS` or `SCAN` and cannot disagree with the
state. This module owns the layout and the reads.

Layout:
- `platform:jobs:<function>`: one sorted set per function, member the job id, score the band of its index state
  (`STATES.index(state) * BAND`) plus the time of the job's latest change in ms: for `waiting`, when it is (or
  was) due (the queue's own score, so `queued` and `deferred` are the two sides of now); for `in_progress` when
  it was claimed; for the final states (`complete`, `failed`, `dead`, `aborted`) when it ended. A change of
  state is one ZADD; a state's jobs are one score range.
- `platform:jobs:functions`: every function the index has seen.
Final states are trimmed by the workers' heartbeats as results expire (and to at most INDEX_MAX ids each); an
id whose job expired otherwise (its event stream gone) is dropped when read.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from arq.connections import ArqRedis

from core import events

PREFIX = "platform:jobs:"
FUNCTIONS = PREFIX + "functions"
INDEX_MAX = 10_000
BAND = 10**13  # above any time in ms for centuries, and six bands stay exact in a double
# Index states, in band order: a waiting job is queued or deferred by its time (now splits them).
WAITING = "waiting"
IN_PROGRESS = "in_progress"
FINAL_STATES = ("complete", "failed", "dead", "aborted")
INDEX_STATES = (WAITING, IN_PROGRESS, *FINAL_STATES)
LAST_MS = BAND - 1


class SearchStatus(StrEnum):
    """What `GET /v1/jobs?status=` filters on: the statuses of `GET /v1/jobs/{id}`, plus `dead` (failed for good
    with a dead letter; its own job shows `failed`)."""

    deferred = "deferred"
    queued = "queued"
    in_progress = "in_progress"
    complete = "complete"
    failed = "failed"
    dead = "dead"
    aborted = "aborted"


def key(function: str) -> str:
    return f"{PREFIX}{function}"


def score(state: str, ms: int) -> int:
    return INDEX_STATES.index(state) * BAND + ms


class BadCursor(ValueError):
    """A cursor this module did not make."""


@dataclass(frozen=True)
class Position:
    """Where a page ends: the last item's score and id (items are ordered by score, then id, descending); as a
    cursor, `<score>:<job id>`."""

    score: int
    job_id: str

    def encode(self) -> str:
        return f"{self.score}:{self.job_id}"

    @classmethod
    def decode(cls, cursor: str) -> Position:
        score, _, job_id = cursor.partition(":")
        if not (score.isascii() and score.isdigit() and len(score) <= 15 and job_id):
            raise BadCursor("the cursor is not one this API returned")
        return cls(int(score), job_id)

    def after(self, score: int, job_id: str) -> bool:
        """Whether (score, job_id) comes after this position, newest first."""
        return score < self.score or (score == self.score and job_id < self.job_id)


@dataclass(frozen=True)
class JobSummary:
    job_id: str
    function: str
    status: SearchStatus
    enqueued_at: datetime | None
    scheduled_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None


@dataclass(frozen=True)
class Page:
    items: list[JobSummary]
    next_cursor: str | None
    status_counts: dict[str, int]
    function_counts: dict[str, int]


def _ms(value: float) -> datetime:
    return datetime.fromtimestamp(value / 1000, UTC)


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


@dataclass(frozen=True)
class _Source:
    """One function's jobs in one status: the times [low_ms, high_ms] of one band of its set."""

    function: str
    status: SearchStatus
    base: int  # the band's first score
    low_ms: int
    high_ms: int

    def bounds(self, after: Position | None) -> list[tuple[str, str]]:
        """ZRANGEBYSCORE (max, min) bounds to read past `after`: its millisecond (read whole, to be ordered by
        id) and the older ones; nothing outside this source's times."""
        low = str(self.base + self.low_ms)
        if after is None:
            return [(str(self.base + self.high_ms), low)]
        ranges = []
        if self.low_ms <= after.score <= self.high_ms:
            ranges.append((str(self.base + after.score), str(self.base + after.score)))
        if after.score <= self.high_ms:
            ranges.append((f"({self.base + after.score}", low))
        else:
            ranges.append((str(self.base + self.high_ms), low))
        return ranges


def _sources(functions: Iterable[str], status: SearchStatus | None, now_ms: int) -> list[_Source]:
    sources = []
    for function in functions:
        for state in INDEX_STATES:
            base = score(state, 0)
            if state == WAITING:
                if status in (None, SearchStatus.deferred):
                    sources.append(_Source(function, SearchStatus.deferred, base, now_ms + 1, LAST_MS))
                if status in (None, SearchStatus.queued):
                    sources.append(_Source(function, SearchStatus.queued, base, 0, now_ms))
            elif status in (None, SearchStatus(state)):
                sources.append(_Source(function, SearchStatus(state), base, 0, LAST_MS))
    return sources


async def functions(redis: ArqRedis, known: Iterable[str] = ()) -> list[str]:
    """Every function the index has seen, and `known` ones (the registry's)."""
    seen = {_text(name) for name in await redis.smembers(FUNCTIONS)}  # type: ignore[misc]
    return sorted(seen | set(known))


async def counts(redis: ArqRedis, names: Sequence[str], now_ms: int) -> tuple[dict[str, int], dict[str, int]]:
    """Jobs per status and per function, over the whole index, in one round trip."""
    sources = _sources(names, None, now_ms)
    async with redis.pipeline(transaction=False) as pipe:
        for source in sources:
            pipe.zcount(key(source.function), source.base + source.low_ms, source.base + source.high_ms)
        replies = await pipe.execute()
    by_status = dict.fromkeys(map(str, SearchStatus), 0)
    by_function: dict[str, int] = {}
    for source, count in zip(sources, replies, strict=True):
        by_status[source.status] += int(count)
        if count:
            by_function[source.function] = by_function.get(source.function, 0) + int(count)
    return by_status, by_function


async def _candidates(
    redis: ArqRedis, sources: list[_Source], after: Position | None, want: int
) -> list[tuple[int, str, _Source]]:
    """Up to `want` items of each source past `after`, merged newest first (by time, then id)."""
    queries: list[_Source] = []
    async with redis.pipeline(transaction=False) as pipe:
        for source in sources:
            for high, low in source.bounds(after):
                exact = high == low
                pipe.zrevrangebyscore(
                    key(source.function), high, low, start=None if exact else 0, num=None if exact else want,
                    withscores=True,
                )  # fmt: skip
                queries.append(source)
        replies = await pipe.execute()
    merged = []
    for source, reply in zip(queries, replies, strict=True):
        for member, raw in reply:
            job_id, at = _text(member), int(raw) - source.base
            if after is None or after.after(at, job_id):
                merged.append((at, job_id, source))
    merged.sort(key=lambda item: (item[0], item[1]), reverse=True)
    return merged[:want]


async def _enqueued_at(redis: ArqRedis, job_ids: list[str]) -> dict[str, int | None]:
    """When each job was enqueued (its first event, when that is the enqueue's, else None); a job whose event
    stream is gone (it expired: its index entry is stale) is left out."""
    async with redis.pipeline(transaction=False) as pipe:
        for job_id in job_ids:
            pipe.xrange(events.job_stream(job_id), count=1)
        replies = await pipe.execute()
    found: dict[str, int | None] = {}
    for job_id, reply in zip(job_ids, replies, strict=True):
        if reply:
            entry_id, fields = reply[0]
            event = events.parse(entry_id, fields)
            enqueued = event is not None and event.event in (events.EventName.queued, events.EventName.deferred)
            at = event.data.get("enqueued_at") if event is not None and enqueued else None
            found[job_id] = at if isinstance(at, int) and not isinstance(at, bool) else None
    return found


def _summary(score: int, job_id: str, source: _Source, enqueued_ms: int | None) -> JobSummary:
    status = source.status
    return JobSummary(
        job_id=job_id,
        function=source.function,
        status=status,
        enqueued_at=_ms(enqueued_ms) if enqueued_ms is not None else None,
        scheduled_at=_ms(score) if status in (SearchStatus.queued, SearchStatus.deferred) else None,
        started_at=_ms(score) if status is SearchStatus.in_progress else None,
        finished_at=_ms(score) if status.value in FINAL_STATES else None,
    )


async def search(
    redis: ArqRedis,
    *,
    status: SearchStatus | None,
    function: str | None,
    limit: int,
    cursor: str | None,
    known_functions: Iterable[str] = (),
) -> Page:
    """One page of jobs, newest change first; raises BadCursor. Ids whose job expired are dropped from the
    index on the way."""
    after = Position.decode(cursor) if cursor else None
    now_ms = int(time.time() * 1000)
    names = await functions(redis, known_functions)
    status_counts, function_counts = await counts(redis, names, now_ms)
    sources = _sources([function] if function is not None else names, status, now_ms)
    items: list[JobSummary] = []
    more = False
    for _ in range(5):  # a page of stale ids is rare; a few passes find live ones past them
        batch = await _candidates(redis, sources, after, limit - len(items) + 1)
        page, more = batch[: limit - len(items)], len(batch) > limit - len(items)
        if not page:
            break
        enqueued = await _enqueued_at(redis, [job_id for _, job_id, _ in page])
        stale = [(key(source.function), job_id) for _, job_id, source in page if job_id not in enqueued]
        items += [
            _summary(score, job_id, source, enqueued[job_id]) for score, job_id, source in page if job_id in enqueued
        ]
        after = Position(page[-1][0], page[-1][1])
        if stale:
            async with redis.pipeline(transaction=False) as pipe:
                for stale_key, job_id in stale:
                    pipe.zrem(stale_key, job_id)
                await pipe.execute()
        if len(items) >= limit or not more:
            break
    next_cursor = after.encode() if more and items and after is not None else None
    return Page(items, next_cursor, status_counts, function_counts)


def trim_args(keeps: Iterable[tuple[str, int | None, int | None]], now_ms: int) -> list[str | int]:
    """The trim_index script's arguments: per function, how long its results and dead letters are kept (ms,
    None for ever)."""
    args: list[str | int] = [now_ms, INDEX_MAX]
    for function, keep_ms, dead_keep_ms in keeps:
        args += [function, "-" if keep_ms is None else keep_ms, "-" if dead_keep_ms is None else dead_keep_ms]
    return args
