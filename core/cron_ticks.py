"""Counting a cron schedule's ticks over a span of time without stepping through them one by one.

arq's `next_cron` finds the next tick by trying candidate times (about 1.5 ms a call here), so walking the
ticks an every-second cron missed over three days would take minutes. A schedule's ticks within one day are
the same every day it runs, so counting needs one sorted list of times of day and a loop over the days.
Ticks are whole seconds here (arq schedules each at .123456 past its second).
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import cached_property
from typing import Any

DAY_S = 86_400
TICK_OFFSET_S = 0.123456
# Days looked at, at the most, in one count: past this the answer is "at least" (a schedule this sparse is rare).
MAX_DAYS = 800


def _values(field: int | set[int] | frozenset[int] | None, everything: range) -> frozenset[int]:
    if field is None:
        return frozenset(everything)
    if isinstance(field, int):
        return frozenset({field})
    return frozenset(field)


@dataclass(frozen=True)
class Schedule:
    """arq's cron fields (UTC); None is every value."""

    months: frozenset[int]
    days: frozenset[int]
    weekdays: frozenset[int]  # Monday is 0, as datetime.weekday()
    hours: frozenset[int]
    minutes: frozenset[int]
    seconds: frozenset[int]

    @classmethod
    def of(cls, fields: dict[str, Any]) -> Schedule:
        return cls(
            months=_values(fields.get("month"), range(1, 13)),
            days=_values(fields.get("day"), range(1, 32)),
            weekdays=_values(fields.get("weekday"), range(7)),
            hours=_values(fields.get("hour"), range(24)),
            minutes=_values(fields.get("minute"), range(60)),
            seconds=_values(fields.get("second"), range(60)),
        )

    @cached_property
    def times_of_day(self) -> list[int]:
        """Seconds after midnight of every tick on a day the schedule runs, in order."""
        return sorted(h * 3600 + m * 60 + s for h in self.hours for m in self.minutes for s in self.seconds)

    def runs_on(self, day: date) -> bool:
        return day.month in self.months and day.day in self.days and day.weekday() in self.weekdays

    def count(self, start_s: int, end_s: int) -> int:
        """Ticks t with start_s <= t <= end_s (unix seconds)."""
        if end_s < start_s:
            return 0
        total = 0
        first_day = start_s // DAY_S
        last_day = min(end_s // DAY_S, first_day + MAX_DAYS)
        for day_number in range(first_day, last_day + 1):
            if not self.runs_on(date.fromordinal(date(1970, 1, 1).toordinal() + day_number)):
                continue
            midnight = day_number * DAY_S
            low = max(start_s - midnight, 0)
            high = min(end_s - midnight, DAY_S - 1)
            total += bisect_right(self.times_of_day, high) - bisect_left(self.times_of_day, low)
        return total

    def latest_at_or_before(self, at_s: int, not_before_s: int) -> int | None:
        """The latest tick at or before `at_s`, looking back no further than `not_before_s`."""
        day_number = at_s // DAY_S
        while day_number * DAY_S + DAY_S > not_before_s and day_number >= at_s // DAY_S - MAX_DAYS:
            midnight = day_number * DAY_S
            if self.runs_on(date.fromordinal(date(1970, 1, 1).toordinal() + day_number)):
                index = bisect_right(self.times_of_day, min(at_s - midnight, DAY_S - 1)) - 1
                if index >= 0:
                    tick = midnight + self.times_of_day[index]
                    return tick if tick >= not_before_s else None
            day_number -= 1
        return None


def missed(fields: dict[str, Any], ran_s: frozenset[int], cutoff: datetime) -> tuple[int, datetime | None]:
    """Ticks since the oldest one recorded as run, up to `cutoff`, that never ran; and the latest of them."""
    if not ran_s:
        return 0, None
    schedule = Schedule.of(fields)
    # arq schedules a tick at .123456 past its second: the tick of second T is due by `cutoff` if T + that is.
    start_s, end_s = min(ran_s), math.floor(cutoff.timestamp() - TICK_OFFSET_S)
    ran_ticks = sum(1 for tick in ran_s if tick <= end_s and schedule.count(tick, tick))
    count = schedule.count(start_s, end_s) - ran_ticks
    latest = None
    tick = schedule.latest_at_or_before(end_s, start_s)
    while tick is not None and count:
        if tick not in ran_s:
            latest = datetime.fromtimestamp(tick, UTC)
            break
        tick = schedule.latest_at_or_before(tick - 1, start_s)
    return count, latest
