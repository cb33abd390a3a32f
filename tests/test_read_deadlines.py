"""service/read_deadlines.py: one timer for every body being read; a read past its deadline is cancelled and
told apart from any other cancellation, a read that ended is left alone, and nothing ticks while idle."""

from __future__ import annotations

import asyncio

from service.read_deadlines import ReadDeadlines

TIMEOUT_S = 0.2


async def _read(deadlines: ReadDeadlines, arrives_after_s: float) -> str:
    task = asyncio.current_task()
    assert task is not None
    deadlines.begin(task)
    try:
        await asyncio.sleep(arrives_after_s)  # the body arriving
        return "read"
    except asyncio.CancelledError:
        if not deadlines.expired(task):
            raise
        task.uncancel()
        return "timed out"
    finally:
        deadlines.end(task)


async def test_only_reads_past_their_deadline_are_cancelled() -> None:
    deadlines = ReadDeadlines(TIMEOUT_S)
    outcomes = await asyncio.wait_for(
        asyncio.gather(_read(deadlines, 0.0), _read(deadlines, 5.0), _read(deadlines, 0.05), _read(deadlines, 5.0)),
        timeout=5 * TIMEOUT_S,
    )
    assert list(outcomes) == ["read", "timed out", "read", "timed out"]
    assert deadlines._reads == {} and deadlines._expired == set()


async def test_a_read_that_ended_is_never_cancelled_later() -> None:
    deadlines = ReadDeadlines(TIMEOUT_S)
    assert await _read(deadlines, 0.0) == "read"
    await asyncio.sleep(2 * TIMEOUT_S)  # past the deadline it had: still running, not cancelled
    assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]


async def test_a_slow_read_is_answered_within_a_quarter_past_its_timeout() -> None:
    deadlines = ReadDeadlines(TIMEOUT_S)
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await _read(deadlines, 5.0) == "timed out"
    assert TIMEOUT_S <= loop.time() - started <= 1.25 * TIMEOUT_S + 0.1


async def test_another_cancellation_is_not_taken_for_the_deadline() -> None:
    deadlines = ReadDeadlines(TIMEOUT_S)
    reading = asyncio.create_task(_read(deadlines, 5.0))
    await asyncio.sleep(0)
    reading.cancel()
    try:
        await reading
    except asyncio.CancelledError:
        pass
    else:
        raise AssertionError("a shutdown's cancellation must go through")
    assert deadlines._reads == {}


async def test_nothing_ticks_while_no_body_is_read() -> None:
    deadlines = ReadDeadlines(TIMEOUT_S)
    assert await _read(deadlines, 0.0) == "read"
    async with asyncio.timeout(2):
        while deadlines._timer is not None:  # the tick that finds no read left does not re-arm
            await asyncio.sleep(deadlines.tick_s / 2)
