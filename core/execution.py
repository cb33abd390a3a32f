"""How the worker runs a registered job: validate again, run under the job's timeout, log every
start, success, retry and failure with its duration, count it, and hand arq a JSON-able result."""

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

from core import cron_runs
from core.context import JobContext
from core.registry import CronSpec, JobSpec

log = structlog.get_logger("jobs")

# arq's own timeout is a backstop a little past ours, so ours fires first and is logged as a failure.
ARQ_TIMEOUT_MARGIN_S = 1.0


class InvalidArguments(ValueError):
    """The job's stored kwargs do not match its signature (the worker validates what the API validated)."""


async def _run_logged(ctx: JobContext, name: str, timeout_s: float, call: Callable[[], Awaitable[Any]]) -> Any:
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
        log.info("job.retrying", duration_ms=_ms_since(started), retry_in_s=delay_s)
        raise
    except asyncio.CancelledError:
        log.info("job.cancelled", duration_ms=_ms_since(started))
        raise
    except Exception as exc:
        if stats:
            stats.failed += 1
        log.warning("job.failed", duration_ms=_ms_since(started), error=type(exc).__name__, message=str(exc))
        raise
    finally:
        if stats:
            stats.ongoing -= 1
    if stats:
        stats.complete += 1
    log.info("job.succeeded", duration_ms=_ms_since(started))
    return to_jsonable_python(result)


def _ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)


def arq_function(spec: JobSpec, default_timeout_s: float) -> Function:
    """Wrap a registered job as an arq Function under its public name."""
    timeout_s = spec.options.timeout_s or default_timeout_s

    async def run(ctx: JobContext, *args: Any, **kwargs: Any) -> Any:
        if args:
            raise InvalidArguments(f"{spec.name} takes keyword arguments only")
        try:
            arguments = spec.validate(kwargs)
        except ValidationError as exc:
            raise InvalidArguments(str(exc)) from None
        values = {name: getattr(arguments, name) for name in type(arguments).model_fields}
        return await _run_logged(ctx, spec.name, timeout_s, lambda: spec.function(ctx, **values))

    run.__qualname__ = run.__name__ = spec.name
    return func(
        run,  # type: ignore[arg-type]
        name=spec.name,
        timeout=timeout_s + ARQ_TIMEOUT_MARGIN_S,
        max_tries=spec.options.max_tries,
        keep_result=spec.options.keep_result_s,
    )


def arq_cron_job(spec: CronSpec, default_timeout_s: float) -> CronJob:
    """Wrap a registered cron job; each run is recorded so `GET /v1/cron` shows the last one."""
    timeout_s = spec.options.timeout_s or default_timeout_s

    async def run(ctx: JobContext) -> Any:
        redis = ctx["redis"]
        await cron_runs.record_start(redis, spec.name, ctx["job_id"])
        started = time.perf_counter()
        try:
            result = await _run_logged(ctx, spec.name, timeout_s, lambda: spec.function(ctx))
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
        keep_result=spec.options.keep_result_s,
        max_tries=1,
        **spec.schedule,  # type: ignore[arg-type]
    )
