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

from core import attempts, codec, dead_letters, keys, priority
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
    """What the finish call carries besides the outcome: the function it publishes the event under ('' when the
    payload did not name one), and the job metrics the worker hands over with it (core/worker/metrics.py)."""

    function: str
    metrics: str = ""
    # Chain and unique work of a job ending for good (core/worker/run.py `workflow`); empty for any other.
    workflow: tuple[str | bytes | int, ...] = ()


def event_of(outcome: Outcome) -> str:
    """The event the finish script publishes for an outcome."""
    match outcome:
        case Succeeded():
            return "complete"
        case Aborted():
            return "aborted"
        case Failed(dead_letter=dead):
            return "failed" if dead is None else "dead"
        case Retrying():
            return "retrying"
        case _:
            return "requeued"


def _flow_options(claim: Claim) -> str:
    """What the finish script needs of priorities and limits (core/lua/finish.lua): nothing for a default job
    holding no slot, so the job path without them is unchanged."""
    level = priority.of_payload(claim.payload)
    if not claim.slot and level == "default":
        return ""
    code = priority.CODES.get(level, "d")
    return f" ~ {int(bool(claim.slot))} {code} {priority.low_aging_ms()}"


async def write(
    pool: ArqRedis, queue_name: str, claim: Claim, outcome: Outcome, storage: Storage, ran: Ran = Ran("")
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
    extra: list[str | int | bytes]
    match outcome:
        case Succeeded(result=payload) | Aborted(result=payload):
            extra = [payload or b""]
        case Failed(result=payload, attempt=entry, dead_letter=dead, error=error):
            script_keys += [keys.attempts(job_id), keys.wake(queue_name)]
            extra = [payload or b"", codec.dumps(entry) if entry else b""]
            if dead is not None:
                script_keys += [keys.dead_letter(job_id), keys.DEAD_LETTERS]
            extra += [dead_letters.encode(dead) if dead else b"", _error_json(error)]
        case Retrying(delay_s=delay_s, attempt=entry, error=error):
            mode, retry_score = "retry", now_ms + int(delay_s * 1000)
            script_keys += [keys.attempts(job_id), keys.wake(queue_name)]
            extra = [b"", codec.dumps(entry) if entry else b"", b"", _error_json(error)]
        case Requeued():
            mode = "requeue"
            script_keys += [keys.attempts(job_id), keys.wake(queue_name)]
            extra = []
        case Lost():
            raise ValueError("a lost claim has nothing to write")
    flow = _flow_options(claim)
    if claim.slot and len(script_keys) < 9:  # a slot given back wakes a worker
        script_keys += [keys.attempts(job_id), keys.wake(queue_name)]
    if ran.metrics or ran.workflow:  # rare: only then are the empty arguments before it sent
        extra = [*extra, *[b""] * (4 - len(extra)), ran.metrics, *ran.workflow]
    options = (
        f"{mode} {_dash(storage.result_px)} {_dash(storage.keep_lease_px)} {retry_score} {now_ms} "
        f"{attempts.ATTEMPTS_TTL_S} {_dash(storage.dead_letter_px)} {MAX_WAKE_TOKENS} {event_of(outcome)}{flow}"
    )
    return bool(await scripts(pool).finish(keys=script_keys, args=[*args, options, ran.function, *extra]))


async def record(
    pool: ArqRedis,
    queue_name: str,
    claim: Claim,
    outcome: Outcome,
    storage: Storage,
    give_up: Callable[[], bool],
    ran: Ran = Ran(""),
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
