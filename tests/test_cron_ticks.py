"""`core.cron_ticks`: counting a schedule's ticks agrees with arq's own `next_cron`, and is fast."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from arq.cron import next_cron

from core.cron_ticks import Schedule, missed

START = datetime(2026, 2, 27, 23, 0, 0, tzinfo=UTC)  # across a month end and a leap-free February


def arq_ticks(fields: dict[str, Any], start: datetime, end: datetime) -> list[int]:
    ticks, tick = [], next_cron(start - timedelta(seconds=1), **fields)
    while tick <= end + timedelta(seconds=0.5):  # arq puts a tick .123456 past its second
        ticks.append(int(tick.timestamp()))
        tick = next_cron(tick, **fields)
    return ticks


@pytest.mark.parametrize(
    "fields",
    [
        {"second": 0},
        {"minute": {0, 15, 30, 45}, "second": 0},
        {"hour": 0, "minute": 0, "second": 0},
        {"day": 1, "hour": 0, "minute": 30, "second": 30},
        {"weekday": 0, "hour": {9, 17}, "minute": 0, "second": 0},
    ],
)
def test_counts_agree_with_arqs_next_cron(fields: dict[str, Any]) -> None:
    end = START + timedelta(days=3, hours=2)
    expected = arq_ticks(fields, START, end)
    schedule = Schedule.of(fields)
    assert schedule.count(int(START.timestamp()), int(end.timestamp())) == len(expected)
    if expected:
        assert schedule.latest_at_or_before(int(end.timestamp()), int(START.timestamp())) == expected[-1]


def test_three_days_of_an_every_second_cron_are_counted_at_once() -> None:
    now = datetime.now(UTC)
    last_ran = int(now.timestamp()) - 3 * 86_400
    started = time.perf_counter()
    count, latest = missed({"second": None}, frozenset({last_ran - 1, last_ran}), now)
    assert time.perf_counter() - started < 0.5
    assert count == 3 * 86_400 - 1 or count == 3 * 86_400
    assert latest is not None and (now - latest) < timedelta(seconds=2)
