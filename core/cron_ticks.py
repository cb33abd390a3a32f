"""A schedule's ticks, in UTC or in a time zone: the next one, and counting them over a span without stepping
through them one by one.

arq's `next_cron` finds the next tick by trying candidate times (about 1.5 ms a call here), so walking the
ticks an every-second cron missed over three days would take minutes. A schedule's ticks within one day are
the same every day it runs, so counting needs one sorted list of times of day and a loop over the days.
Ticks are whole seconds here (arq schedules each at .123456 past its second).

A zoned schedule's fields are wall-clock times of its zone, and each wall time runs at most once: a time the
clocks skip (spring forward) has no tick that day, and a time they repeat (fall back) runs at its first
occurrence only. A local day is then at most two segments of constant UTC offset, and the same bisection
counts and finds its ticks; the worker's next tick and the API's counts come from this one mapping.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import cached_property, lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from arq.cron import next_cron

DAY_S = 86_400
TICK_OFFSET_S = 0.123456
# Days looked at, at the most, in one count: past this the answer is "at least" (a schedule this sparse is rare).
MAX_DAYS = 800
EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
# (unix base, low, high): wall seconds w of a local day with low <= w < high happen at unix second base + w.
Segment = tuple[int, int, int]


def _values(field: int | set[int] | frozenset[int] | None, everything: range) -> frozenset[int]:
    if field is None:
        return frozenset(everything)
    if isinstance(field, int):
        return frozenset({field})
    return frozenset(field)


def _offset_s(zone: ZoneInfo, unix_s: int) -> int:
    offset = datetime.fromtimestamp(unix_s, zone).utcoffset()
    return int(offset.total_seconds()) if offset else 0


@lru_cache(maxsize=4096)
def _zoned_segments(zone: ZoneInfo, day_number: int) -> tuple[Segment, ...]:
    """A local day as one segment, or two around the day's offset change (found by bisection, to the second)."""
    naive_midnight = day_number * DAY_S  # the local midnight's wall clock, read as if it were UTC
    day = date.fromordinal(EPOCH_ORDINAL + day_number)
    start_offset = _wall_offset_s(zone, day)
    end_offset = _wall_offset_s(zone, day + timedelta(days=1))
    if start_offset == end_offset:
        return ((naive_midnight - start_offset, 0, DAY_S),)
    low, high = naive_midnight - start_offset, naive_midnight + DAY_S - end_offset
    while high - low > 1:  # the first unix second with the new offset is in (low, high]
        middle = (low + high) // 2
        if _offset_s(zone, middle) == end_offset:
            high = middle
        else:
            low = middle
    change_wall = high + start_offset - naive_midnight  # the change's wall time, on the old offset's clock
    skipped = max(0, end_offset - start_offset)  # spring forward: these wall seconds never happen
    return (
        (naive_midnight - start_offset, 0, change_wall),
        (naive_midnight - end_offset, change_wall + skipped, DAY_S),
    )


def _wall_offset_s(zone: ZoneInfo, day: date) -> int:
    offset = datetime(day.year, day.month, day.day, tzinfo=zone).utcoffset()
    return int(offset.total_seconds()) if offset else 0


@dataclass(frozen=True)
class Schedule:
    """arq's cron fields, in UTC or as wall-clock times of `zone`; None is every value."""

    months: frozenset[int]
    days: frozenset[int]
    weekdays: frozenset[int]  # Monday is 0, as datetime.weekday()
    hours: frozenset[int]
    minutes: frozenset[int]
    seconds: frozenset[int]
    zone: ZoneInfo | None = None

    @classmethod
    def of(cls, fields: dict[str, Any], zone: ZoneInfo | None = None) -> Schedule:
        return cls(
            months=_values(fields.get("month"), range(1, 13)),
            days=_values(fields.get("day"), range(1, 32)),
            weekdays=_values(fields.get("weekday"), range(7)),
            hours=_values(fields.get("hour"), range(24)),
            minutes=_values(fields.get("minute"), range(60)),
            seconds=_values(fields.get("second"), range(60)),
            zone=zone,
        )

    @cached_property
    def times_of_day(self) -> list[int]:
        """Seconds after midnight of every tick on a day the schedule runs, in order."""
        return sorted(h * 3600 + m * 60 + s for h in self.hours for m in self.minutes for s in self.seconds)

    def runs_on(self, day: date) -> bool:
        return day.month in self.months and day.day in self.days and day.weekday() in self.weekdays

    def local_day(self, unix_s: int) -> int:
        """The day number (days since 1970-01-01) of the local date at this instant."""
        offset = 0 if self.zone is None else _offset_s(self.zone, unix_s)
        return (unix_s + offset) // DAY_S

    def segments(self, day_number: int) -> tuple[Segment, ...]:
        """The local day's wall seconds and the unix seconds they happen at; () when the schedule skips the day."""
        if not self.runs_on(date.fromordinal(EPOCH_ORDINAL + day_number)):
            return ()
        if self.zone is None:
            return ((day_number * DAY_S, 0, DAY_S),)
        return _zoned_segments(self.zone, day_number)

    def count(self, start_s: int, end_s: int) -> int:
        """Ticks t with start_s <= t <= end_s (unix seconds)."""
        if end_s < start_s:
            return 0
        total = 0
        first_day = self.local_day(start_s)
        last_day = min(self.local_day(end_s), first_day + MAX_DAYS)
        for day_number in range(first_day, last_day + 1):
            for base, low, high in self.segments(day_number):
                low_w, high_w = max(start_s - base, low), min(end_s - base, high - 1)
                if low_w <= high_w:
                    total += bisect_right(self.times_of_day, high_w) - bisect_left(self.times_of_day, low_w)
        return total

    def latest_at_or_before(self, at_s: int, not_before_s: int) -> int | None:
        """The latest tick at or before `at_s`, looking back no further than `not_before_s`."""
        last_day = self.local_day(at_s)
        for day_number in range(last_day, max(self.local_day(not_before_s), last_day - MAX_DAYS) - 1, -1):
            for base, low, high in reversed(self.segments(day_number)):
                high_w = min(at_s - base, high - 1)
                index = bisect_right(self.times_of_day, high_w) - 1
                if high_w >= low and index >= 0 and self.times_of_day[index] >= low:
                    tick = base + self.times_of_day[index]
                    return tick if tick >= not_before_s else None
        return None

    def first_after(self, after_s: int) -> int | None:
        """The first tick later than `after_s` (None when none comes within MAX_DAYS)."""
        first_day = self.local_day(after_s)
        for day_number in range(first_day, first_day + MAX_DAYS + 1):
            for base, low, high in self.segments(day_number):
                index = bisect_left(self.times_of_day, max(after_s + 1 - base, low))
                if index < len(self.times_of_day) and self.times_of_day[index] < high:
                    return base + self.times_of_day[index]
        return None


def schedule_of(fields: dict[str, Any], zone: ZoneInfo | None = None) -> Schedule:
    """The schedule of these fields, made once (an every-second schedule sorts 86,400 times of day)."""
    key = tuple(sorted((name, frozenset(v) if isinstance(v, set | frozenset) else v) for name, v in fields.items()))
    return _schedule_of(key, zone)


@lru_cache(maxsize=256)
def _schedule_of(key: tuple[tuple[str, Any], ...], zone: ZoneInfo | None) -> Schedule:
    return Schedule.of(dict(key), zone)


def next_tick(fields: dict[str, Any], zone: ZoneInfo | None, after: datetime) -> datetime | None:
    """The schedule's next tick after `after`, as arq schedules it (.123456 past its second), in UTC. A UTC
    schedule keeps arq's own `next_cron`; a zoned one follows the wall clock as the module says."""
    if zone is None:
        return next_cron(after.astimezone(UTC), **fields)
    tick = schedule_of(fields, zone).first_after(math.floor(after.timestamp()))
    return None if tick is None else datetime.fromtimestamp(tick + TICK_OFFSET_S, UTC)


def missed(
    fields: dict[str, Any],
    ran_s: frozenset[int],
    cutoff: datetime,
    zone: ZoneInfo | None = None,
    paused: tuple[tuple[int, int], ...] = (),
) -> tuple[int, datetime | None]:
    """Ticks since the oldest one recorded as run, up to `cutoff`, that never ran and did not fall while the
    schedule was paused (`paused`: disjoint (from_s, to_s) spans); and the latest of them."""
    if not ran_s:
        return 0, None
    schedule = schedule_of(fields, zone)
    # arq schedules a tick at .123456 past its second: the tick of second T is due by `cutoff` if T + that is.
    start_s, end_s = min(ran_s), math.floor(cutoff.timestamp() - TICK_OFFSET_S)
    ran_ticks = {tick for tick in ran_s if tick <= end_s and schedule.count(tick, tick)}
    count = schedule.count(start_s, end_s) - len(ran_ticks)
    spans = sorted((max(low, start_s), min(high, end_s)) for low, high in paused if high >= start_s and low <= end_s)
    for low, high in spans:
        count -= schedule.count(low, high) - sum(1 for tick in ran_ticks if low <= tick <= high)
    latest = None
    tick = schedule.latest_at_or_before(end_s, start_s)
    while tick is not None and count > 0:
        span = next((s for s in spans if s[0] <= tick <= s[1]), None)
        if span is not None:
            tick = schedule.latest_at_or_before(span[0] - 1, start_s)
            continue
        if tick not in ran_s:
            latest = datetime.fromtimestamp(tick, UTC)
            break
        tick = schedule.latest_at_or_before(tick - 1, start_s)
    return max(count, 0), latest
