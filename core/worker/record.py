"""Writing a try's outcome: one fenced script, one round trip, and not lost to a Redis blip.

The script (core/lua/finish.lua) writes only if this claim still holds the job; otherwise it changes nothing
and the copy is logged as stale. A write that fails because Redis is away is kept and tried again with backoff
until Redis answers (or the worker gives up at the end of its shutdown grace), so a job whose code finished
during an outage shorter than its lease is not run again.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

import structlog
from arq.connections import ArqRedis
from redis.exceptions import NoScriptError, RedisError

from core import attempts, codec, dead_letters, job_metrics, keys
from core.codec import JobError
from core.scripts import MAX_WAKE_TOKENS, scripts
from core.worker.claim import Claim
from core.worker.outcome import Aborted, Failed, Lost, Outcome, Requeued, Retrying, Succeeded

log = structlog.get_logger("worker")
BACKOFF_MAX_S = 2.0


@dataclass(frozen=True)
class Storage:
    """How long the outcome's records live."""

    result_px: int | None  # None: kept forever
    keep_lease_px: int | None  # arq keeps a cron job's claim a while after it ends; None deletes it
    dead_letter_px: int | None  # None: kept until deleted


def _dash(value: int | None) -> str:
    return "-" if value is None else str(value)


def _error_json(error: JobError | None) -> bytes:
    """What an event says of a failure (its traceback stays in the job's records)."""
    return b"" if error is None else codec.dumps({"type": error.type, "message": error.message, "kind": error.kind})


@dataclass(frozen=True)
class Ran:
    """What the finish script publishes and counts besides the outcome: the function ('' when the payload did
    not name one) and how long the try ran (None: it did not run)."""

    function: str
    duration_s: float | None


async def write(
    pool: ArqRedis, queue_name: str, claim: Claim, outcome: Outcome, storage: Storage, ran: Ran = Ran("", None)
) -> bool:
    """One attempt at writing; True when written, False when the claim no longer holds the job. Only the keys
    and arguments the outcome needs are sent: each one costs the client encoding work on the hot path."""
    job_id = claim.job_id
    now_ms = int(time.time() * 1000)
    script_keys = [
        keys.in_progress(job_id), keys.retry(job_id), keys.job(job_id), keys.result(job_id), queue_name,
        keys.ABORT_SET, keys.holder(job_id),
    ]  # fmt: skip
    mode, retry_score = "finish", now_ms
    args: list[str | int | bytes] = [job_id, claim.token, claim.job_try]
    match outcome:
        case Succeeded(result=payload):
            event, extra = "complete", [payload or b""]
        case Aborted(result=payload):
            event, extra = "aborted", [payload or b""]
        case Failed(result=payload, attempt=entry, dead_letter=dead, error=error):
            script_keys += [keys.attempts(job_id), keys.wake(queue_name)]
            event = "failed" if dead is None else "dead"
            extra = [payload or b"", codec.dumps(entry) if entry else b""]
            if dead is not None:
                script_keys += [keys.dead_letter(job_id), keys.DEAD_LETTERS]
            extra += [dead_letters.encode(dead) if dead else b"", _error_json(error)]
        case Retrying(delay_s=delay_s, attempt=entry, error=error):
            mode, event, retry_score = "retry", "retrying", now_ms + int(delay_s * 1000)
            script_keys += [keys.attempts(job_id), keys.wake(queue_name)]
            extra = [b"", codec.dumps(entry) if entry else b"", b"", _error_json(error)]
        case Requeued():
            mode, event = "requeue", "requeued"
            script_keys += [keys.attempts(job_id), keys.wake(queue_name)]
            extra = []
        case Lost():
            raise ValueError("a lost claim has nothing to write")
    observed = "- -"
    if ran.duration_s is not None and mode != "requeue":
        observed = f"{job_metrics.bucket_index(ran.duration_s)} {ran.duration_s:.6f}"
    options = (
        f"{mode} {_dash(storage.result_px)} {_dash(storage.keep_lease_px)} {retry_score} {now_ms} "
        f"{attempts.ATTEMPTS_TTL_S} {_dash(storage.dead_letter_px)} {MAX_WAKE_TOKENS} {event} {observed}"
    )
    return bool(await scripts(pool).finish(keys=script_keys, args=[*args, options, ran.function, *extra]))


async def record(
    pool: ArqRedis,
    queue_name: str,
    claim: Claim,
    outcome: Outcome,
    storage: Storage,
    give_up: Callable[[], bool],
    ran: Ran = Ran("", None),
) -> bool | None:
    """Write the outcome, riding out Redis outages: True written, False stale, None given up (`give_up()`)."""
    backoff_s = 0.05
    while True:
        try:
            return await write(pool, queue_name, claim, outcome, storage, ran)
        except NoScriptError:
            continue  # Redis restarted empty between redis-py's load and our call: it loads again
        except (RedisError, OSError) as exc:
            if give_up():
                log.error("job.outcome_unrecorded", job_id=claim.job_id, error=type(exc).__name__)
                return None
            log.warning("job.outcome_retrying", job_id=claim.job_id, error=type(exc).__name__, retry_in_s=backoff_s)
            await asyncio.sleep(backoff_s)
            backoff_s = min(BACKOFF_MAX_S, backoff_s * 2)
