"""`core.worker.claim`, `core.worker.leases`, `core.worker.record`: the claim's token fences every later write;
a copy that no longer holds its job changes nothing, and nothing puts an ended job back on the queue."""

from __future__ import annotations

import time

from arq.connections import ArqRedis

from core import keys, wire
from core.abort import abort_job
from core.codec import ErrorKind, JobError
from core.worker import leases
from core.worker.claim import Claim, claim
from core.worker.outcome import Failed, Requeued, Retrying, Succeeded
from core.worker.record import Storage, write
from settings import Settings

QUEUE = "arq:queue"
KEEP = Storage(result_px=60_000, keep_lease_px=None, dead_letter_px=None)


async def stage(redis: ArqRedis, job_id: str, score_ms: int | None = None) -> None:
    await redis.set(keys.job(job_id), wire.encode_job("echo", {"value": 1}, int(time.time() * 1000)))
    await redis.zadd(QUEUE, {job_id: score_ms if score_ms is not None else int(time.time() * 1000) - 1})


async def take(redis: ArqRedis, worker: str = "w1", lease_ms: int = 10_000) -> list[Claim]:
    claimed, _ = await claim(redis, QUEUE, worker, int(time.time() * 1000), 10, 100, lease_ms)
    return claimed


async def test_a_claim_holds_its_job_with_its_own_token(settings: Settings, redis: ArqRedis) -> None:
    await stage(redis, "a")
    (held,) = await take(redis, "worker-1")
    assert held.token.startswith("worker-1:") and held.job_try == 1 and held.payload is not None
    assert await redis.get(keys.in_progress("a")) == held.token.encode()
    assert abs((wire.lease_started_ms(held.token) or 0) - int(time.time() * 1000)) < 5_000
    assert await take(redis, "worker-2") == []  # held: nobody else claims it


async def test_a_stale_copy_changes_nothing(settings: Settings, redis: ArqRedis) -> None:
    await stage(redis, "a")
    (stale,) = await take(redis, "frozen", lease_ms=50)
    await redis.delete(keys.in_progress("a"))  # its lease lapsed...
    (current,) = await take(redis, "other")  # ...and another worker claimed the job
    assert current.job_try == 2
    for outcome in (Succeeded(b'{"r":1}'), Retrying(0, None), Requeued()):
        assert await write(redis, QUEUE, stale, outcome, KEEP) is False
    assert await redis.get(keys.in_progress("a")) == current.token.encode()  # not renewed away, not removed
    assert await redis.get(keys.retry("a")) == b"2"  # no try given back by the stale copy
    assert await redis.exists(keys.result("a")) == 0
    assert await write(redis, QUEUE, current, Succeeded(b'{"r":2}'), KEEP) is True
    assert await redis.get(keys.result("a")) == b'{"r":2}'
    assert await redis.zscore(QUEUE, "a") is None
    # Late writes of the stale copy cannot overwrite the success nor put the job back on the queue.
    error = JobError.of_kind(ErrorKind.expired, "x")
    assert await write(redis, QUEUE, stale, Failed(error, b"failed", None, None), KEEP) is False
    assert await write(redis, QUEUE, stale, Retrying(0, None), KEEP) is False
    assert await redis.get(keys.result("a")) == b'{"r":2}' and await redis.zscore(QUEUE, "a") is None
    assert await leases.renew(redis, [stale], 10_000) == [stale]


async def test_a_lapsed_lease_nobody_took_is_still_ours(settings: Settings, redis: ArqRedis) -> None:
    await stage(redis, "a")
    (held,) = await take(redis)
    await redis.delete(keys.in_progress("a"))  # lapsed during an outage; nobody claimed it since
    assert await leases.renew(redis, [held], 10_000) == []  # taken back (marked: an abort may have come meanwhile)
    assert await redis.get(keys.in_progress("a")) == f"{held.token}|abort".encode()
    await redis.delete(keys.in_progress("a"))
    assert await write(redis, QUEUE, held, Succeeded(b"{}"), KEEP) is True


async def test_a_retry_reschedules_only_a_queued_job_and_requeue_gives_the_try_back(
    settings: Settings, redis: ArqRedis
) -> None:
    await stage(redis, "a")
    (held,) = await take(redis)
    assert await write(redis, QUEUE, held, Retrying(30, {"try": 1}), KEEP) is True
    score = await redis.zscore(QUEUE, "a")
    assert score is not None and score > time.time() * 1000 + 25_000
    assert await redis.exists(keys.in_progress("a")) == 0 and await redis.llen(keys.attempts("a")) == 1
    await redis.zadd(QUEUE, {"a": int(time.time() * 1000) - 1})
    (again,) = await take(redis)
    assert again.job_try == 2
    assert await write(redis, QUEUE, again, Requeued(), KEEP) is True
    assert await redis.get(keys.retry("a")) == b"1"


async def test_a_stray_queue_entry_of_an_ended_job_is_dropped_not_run(settings: Settings, redis: ArqRedis) -> None:
    await redis.set(keys.result("done"), b'{"s": true}')
    await redis.zadd(QUEUE, {"done": 1})  # no payload, but a kept result: it ended
    assert await take(redis) == []
    assert await redis.zscore(QUEUE, "done") is None
    assert await redis.get(keys.result("done")) == b'{"s": true}'


async def test_a_claim_reads_no_more_than_its_read_limit(settings: Settings, redis: ArqRedis) -> None:
    for n in range(30):
        await stage(redis, f"j{n}", int(time.time() * 1000) - 1000 + n)
    claimed, _ = await claim(redis, QUEUE, "w", int(time.time() * 1000), 100, 7, 10_000)
    assert len(claimed) == 7


async def test_a_copy_from_an_earlier_life_of_the_same_job_id_cannot_take_it_back(
    settings: Settings, redis: ArqRedis
) -> None:
    """The try counter is reset when a job ends, so it cannot tell claims apart; the holder key can."""
    await stage(redis, "k")
    (old,) = await take(redis, "frozen")
    await redis.delete(keys.in_progress("k"))  # A's lease lapses
    (other,) = await take(redis, "b")
    assert await write(redis, QUEUE, other, Succeeded(None), KEEP) is True  # ends, keeps no result
    await stage(redis, "k")  # the client enqueues the same id again
    (new,) = await take(redis, "c")
    assert new.job_try == old.job_try == 1
    assert await write(redis, QUEUE, new, Retrying(60, None), KEEP) is True  # retry in a minute: no lease now
    assert await leases.renew(redis, [old], 10_000) == [old]  # A wakes: it does not take the new life back
    assert await write(redis, QUEUE, old, Succeeded(b"old life"), KEEP) is False
    assert await redis.exists(keys.in_progress("k"), keys.result("k")) == 0


async def test_a_renewal_that_arrives_after_a_retry_does_not_bring_the_lease_back(
    settings: Settings, redis: ArqRedis
) -> None:
    await stage(redis, "r")
    (held,) = await take(redis)
    assert await write(redis, QUEUE, held, Retrying(0, None), KEEP) is True
    assert await leases.renew(redis, [held], 10_000) == [held]  # the renewal was in flight: it is refused
    (again,) = await take(redis)  # and the retry is claimable at once
    assert again.job_try == 2


async def command_calls(redis: ArqRedis) -> dict[str, int]:
    info = await redis.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(stat["calls"]) for name, stat in info.items()}


async def test_a_first_try_and_a_finish_nobody_aborted_write_the_try_counter_once_and_leave_the_abort_set(
    settings: Settings, redis: ArqRedis
) -> None:
    """Commands per job are the job path's cost: the first try sets arq's counter with its lifetime in one
    command, and a finish reads from the lease whether an abort may be waiting (no abort set write)."""
    await stage(redis, "a")
    before = await command_calls(redis)
    (held,) = await take(redis)
    assert await write(redis, QUEUE, held, Succeeded(b"{}"), KEEP) is True
    after = await command_calls(redis)
    ran = {name: n - before.get(name, 0) for name, n in after.items() if n != before.get(name, 0)}
    assert "incr" not in ran and "expire" not in ran
    assert ran["zrem"] == 1  # the queue's entry only
    assert held.job_try == 1


async def test_the_try_counter_keeps_arqs_values_and_lifetime(settings: Settings, redis: ArqRedis) -> None:
    await stage(redis, "a")
    (held,) = await take(redis)
    assert await redis.get(keys.retry("a")) == b"1"
    assert 88_000 < await redis.ttl(keys.retry("a")) <= 88_400
    assert await write(redis, QUEUE, held, Requeued(), KEEP) is True  # the try given back: the counter is 0
    assert await redis.get(keys.retry("a")) == b"0"
    await redis.persist(keys.retry("a"))
    (again,) = await take(redis)
    assert again.job_try == 1 and await redis.get(keys.retry("a")) == b"1"
    assert await redis.ttl(keys.retry("a")) > 88_000  # counting on from 0 gives it its lifetime again
    assert await write(redis, QUEUE, again, Retrying(0, None), KEEP) is True
    (third,) = await take(redis)
    assert third.job_try == 2 and await redis.get(keys.retry("a")) == b"2"


async def test_an_abort_that_comes_while_the_job_runs_is_taken_off_the_abort_set_by_its_finish(
    settings: Settings, redis: ArqRedis
) -> None:
    """The worker may finish the job before it looks at the abort set: the finish clears the entry, else a
    later job under the same id would be aborted by it."""
    await stage(redis, "a")
    (held,) = await take(redis)
    assert await abort_job(redis, QUEUE, "a", 60) == "aborting"
    assert await abort_job(redis, QUEUE, "a", 60) == "aborting"
    assert await redis.zscore(keys.ABORT_SET, "a") is not None
    assert await redis.get(keys.in_progress("a")) == f"{held.token}|abort".encode()  # marked once
    assert await leases.renew(redis, [held], 10_000) == []  # the mark does not cost the claim its lease
    assert await write(redis, QUEUE, held, Succeeded(b"{}"), KEEP) is True
    assert await redis.zscore(keys.ABORT_SET, "a") is None


async def test_an_abort_whose_mark_lapsed_with_the_lease_is_still_cleared(settings: Settings, redis: ArqRedis) -> None:
    for job_id, take_back in (("a", True), ("b", False)):
        await stage(redis, job_id)
        (held,) = await take(redis)
        assert await abort_job(redis, QUEUE, job_id, 60) == "aborting"
        await redis.delete(keys.in_progress(job_id))  # the lease lapsed, and its mark with it
        if take_back:
            assert await leases.renew(redis, [held], 10_000) == []
        assert await write(redis, QUEUE, held, Succeeded(b"{}"), KEEP) is True
        assert await redis.zscore(keys.ABORT_SET, job_id) is None


async def test_a_stale_copy_of_an_aborted_job_changes_nothing(settings: Settings, redis: ArqRedis) -> None:
    await stage(redis, "a")
    (stale,) = await take(redis, "frozen")
    await redis.delete(keys.in_progress("a"))
    (current,) = await take(redis, "other")
    assert await abort_job(redis, QUEUE, "a", 60) == "aborting"  # marks the current claim's lease
    assert await write(redis, QUEUE, stale, Succeeded(b"stale"), KEEP) is False
    assert await leases.renew(redis, [stale], 10_000) == [stale]
    assert await redis.zscore(keys.ABORT_SET, "a") is not None and await redis.exists(keys.result("a")) == 0
    assert await write(redis, QUEUE, current, Succeeded(b"{}"), KEEP) is True
    assert await redis.zscore(keys.ABORT_SET, "a") is None


async def test_a_claim_passes_over_the_jobs_its_worker_runs(settings: Settings, redis: ArqRedis) -> None:
    """They stay on the queue until they end; trying each again is a command a job that cannot succeed, and a
    lease of ours that lapsed is the renewal's to take back (the copy keeps running), not a new claim's."""
    await stage(redis, "a", int(time.time() * 1000) - 2)
    (held,) = await take(redis)
    await stage(redis, "b")
    await redis.delete(keys.in_progress("a"))  # a's lease lapsed
    before = await command_calls(redis)
    claimed, _ = await claim(redis, QUEUE, "w1", int(time.time() * 1000), 10, 100, 10_000, running=["a"])
    after = await command_calls(redis)
    assert [c.job_id for c in claimed] == ["b"]
    assert after["set"] - before["set"] == 3  # b's lease, try counter and holder: none for a
    assert await redis.exists(keys.in_progress("a")) == 0 and await redis.get(keys.retry("a")) == b"1"
    assert await leases.renew(redis, [held], 10_000) == []  # the renewal takes a back
    assert await write(redis, QUEUE, held, Succeeded(b"{}"), KEEP) is True
