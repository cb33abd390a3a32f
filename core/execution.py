"""How the worker runs a registered job: validate again, run under the job's timeout, decide retry or
give up by the function's retry policy, record every failed try, and log each start, success, retry
and failure with its duration."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from arq import Retry
from arq.cron import CronJob
from arq.cron import cron as arq_cron
from arq.worker import Function, func
from pydantic import ValidationError
from pydantic_core import to_jsonable_python

from core import attempts, cron_runs
from core.context import JobContext
from core.dead_letters import DeadLetter
from core.registry import CronSpec, JobSpec
from core.retry import Fatal, RetryPolicy
from settings import Settings

log = structlog.get_logger("jobs")

# arq's own timeout is a backstop a little past ours, so ours fires first and is handled as a failure.
ARQ_TIMEOUT_MARGIN_S = 1.0
# A cron tick's kept result is what stops a worker that stalled across the tick from running it again.
CRON_MIN_KEEP_RESULT_S = 3600


class InvalidArguments(Fatal, ValueError):
    """The job's stored kwargs do not match its signature (the worker validates what the API validated)."""


def default_policy(settings: Settings) -> RetryPolicy:
    return RetryPolicy(
        delay_s=settings.retry_delay_seconds,
        max_delay_s=settings.retry_max_delay_seconds,
        jitter=settings.retry_jitter,
    )


def _ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)


def _message(exc: BaseException, timeout_s: float) -> str:
    if isinstance(exc, TimeoutError) and not str(exc):
        return f"timed out after {timeout_s:g}s"
    return str(exc)


async def _execute(
    ctx: JobContext,
    name: str,
    timeout_s: float,
    call: Callable[[], Awaitable[Any]],
    *,
    policy: RetryPolicy | None,
    max_tries: int,
    kwargs: dict[str, Any],
) -> Any:
    """Run one try. On failure: raise arq's Retry with the policy's delay, or give up (dead letter)."""
    stats = ctx.get("stats")
    started = time.perf_counter()
    log.info("job.started", function=name)
    if stats:
        stats.ongoing += 1
    try:
        async with asyncio.timeout(timeout_s):
            result = await call()
    except Retry as exc:
        if stats:
            stats.retried += 1
        delay_s = (exc.defer_score or 0) / 1000
        entry = attempts.attempt(ctx.get("job_try", 1), "Retry", "the job asked to be retried", None, delay_s)
        await attempts.record(ctx["redis"], ctx["job_id"], entry)
        log.info("job.retrying", function=name, duration_ms=_ms_since(started), requested_by="job")
        raise
    except asyncio.CancelledError:
        log.info("job.cancelled", function=name, duration_ms=_ms_since(started))
        raise
    except Exception as exc:
        await _handle_failure(ctx, name, exc, _message(exc, timeout_s), started, policy, max_tries, kwargs)
        raise
    finally:
        if stats:
            stats.ongoing -= 1
    if stats:
        stats.complete += 1
    log.info("job.succeeded", function=name, duration_ms=_ms_since(started))
    return to_jsonable_python(result)


async def _handle_failure(
    ctx: JobContext,
    name: str,
    exc: Exception,
    message: str,
    started: float,
    policy: RetryPolicy | None,
    max_tries: int,
    kwargs: dict[str, Any],
) -> None:
    job_try = ctx.get("job_try", 1)
    error = type(exc).__name__
    duration_s = time.perf_counter() - started
    retry = policy is not None and policy.should_retry(exc) and job_try < max_tries
    delay_s = policy.delay_for(job_try) if retry and policy else None
    history = await attempts.record(
        ctx["redis"], ctx["job_id"], attempts.attempt(job_try, error, message, duration_s, delay_s)
    )
    stats = ctx.get("stats")
    if retry:
        if stats:
            stats.retried += 1
        log.info(
            "job.retrying",
            function=name,
            duration_ms=round(duration_s * 1000, 2),
            error=error,
            message=message,
            retry_in_s=round(delay_s or 0, 3),
        )
        raise Retry(defer=delay_s) from exc
    if stats:
        stats.failed += 1
    reason = (
        "fatal error"
        if policy is not None and not policy.should_retry(exc)
        else f"failed {job_try} of {max_tries} tries"
    )
    log.warning(
        "job.failed",
        function=name,
        duration_ms=round(duration_s * 1000, 2),
        error=error,
        message=message,
        reason=reason,
    )
    give_up = ctx.get("give_up")
    if policy is not None and isinstance(give_up, dict):
        give_up[ctx["job_id"]] = DeadLetter(
            job_id=ctx["job_id"],
            function=name,
            kwargs=kwargs,
            tries=job_try,
            reason=reason,
            error_type=error,
            error_message=message,
            queue=ctx.get("queue_name", ""),
            attempts=attempts.with_lost_tries(history, job_try),
        )


def arq_function(spec: JobSpec, settings: Settings) -> Function:
    """Wrap a registered job as an arq Function under its public name."""
    timeout_s = spec.options.timeout_s or settings.job_timeout_seconds
    max_tries = spec.options.max_tries or settings.max_tries
    policy = spec.options.retry or default_policy(settings)

    async def run(ctx: JobContext, *args: Any, **kwargs: Any) -> Any:
        async def call() -> Any:
            if args:
                raise InvalidArguments(f"{spec.name} takes keyword arguments only")
            try:
                arguments = spec.validate(kwargs)
            except ValidationError as exc:
                raise InvalidArguments(str(exc)) from None
            values = {name: getattr(arguments, name) for name in type(arguments).model_fields}
            return await spec.function(ctx, **values)

        return await _execute(ctx, spec.name, timeout_s, call, policy=policy, max_tries=max_tries, kwargs=kwargs)

    run.__qualname__ = run.__name__ = spec.name
    return func(
        run,  # type: ignore[arg-type]
        name=spec.name,
        timeout=timeout_s + ARQ_TIMEOUT_MARGIN_S,
        max_tries=max_tries,
        keep_result=spec.options.keep_result_s,
    )


def arq_cron_job(spec: CronSpec, settings: Settings) -> CronJob:
    """Wrap a registered cron job; each run is recorded so `GET /v1/cron` shows the last one.

    A failed tick is not retried or dead-lettered: its error shows in its last run, and the next tick runs.
    """
    timeout_s = spec.options.timeout_s or settings.job_timeout_seconds

    async def run(ctx: JobContext) -> Any:
        redis = ctx["redis"]
        await cron_runs.record_start(redis, spec.name, ctx["job_id"])
        started = time.perf_counter()
        try:
            result = await _execute(
                ctx, spec.name, timeout_s, lambda: spec.function(ctx), policy=None, max_tries=1, kwargs={}
            )
        except Exception as exc:
            await cron_runs.record_end(redis, spec.name, "failed", time.perf_counter() - started, repr(exc))
            raise
        await cron_runs.record_end(redis, spec.name, "complete", time.perf_counter() - started, None)
        return result

    run.__qualname__ = run.__name__ = spec.name
    return arq_cron(
        run,  # type: ignore[arg-type]
        name=spec.name,
        run_at_startup=spec.run_at_startup,
        unique=True,
        timeout=timeout_s + ARQ_TIMEOUT_MARGIN_S,
        keep_result=max(CRON_MIN_KEEP_RESULT_S, spec.options.keep_result_s or settings.keep_result_seconds),
        max_tries=1,
        **spec.schedule,  # type: ignore[arg-type]
    )
