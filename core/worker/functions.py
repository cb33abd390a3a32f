"""What the worker knows about each function it runs, resolved once when the worker is built: arq's Function
and CronJob options with arq's defaults applied, and for the platform's own jobs their contract and retry
policy. A plain arq function (no `@job` contract) keeps arq's semantics: its result is stored as arq stores it,
`Retry` reschedules it, any other exception fails it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import arq.worker
from arq.cron import CronJob
from arq.worker import Function
from pydantic import BaseModel

from core.job_limits import Limits
from core.registry import CRON_ATTRIBUTE, JOB_ATTRIBUTE, JobSpec
from core.retry import RetryPolicy
from settings import Settings


@dataclass(frozen=True)
class Runnable:
    name: str
    coroutine: Any
    spec: JobSpec | None  # the platform job's contract; None for a plain arq function or a cron job
    platform_cron: bool  # a `@cron` of the platform: its runs are recorded for `GET /v1/cron`
    timeout_s: float
    max_tries: int
    keep_result_s: float
    keep_result_forever: bool
    policy: RetryPolicy | None  # None: arq's semantics
    keep_lease_s: float | None  # arq keeps a cron job's claim a minute after it ends
    cron_arguments: type[BaseModel] | None = None  # a platform schedule's argument model, for its ticks' kwargs
    limits: Limits | None = None  # its rate and concurrency limits (core/job_limits.py)


def resolve(
    function: Function | CronJob,
    *,
    timeout_s: float,
    max_tries: int,
    keep_result_s: float,
    keep_result_forever: bool,
    settings: Settings,
) -> Runnable:
    """One function's options, the worker's defaults filled in where the function has none (as arq does)."""
    spec: JobSpec | None = getattr(function.coroutine, JOB_ATTRIBUTE, None)
    is_cron = isinstance(function, CronJob)
    policy = None
    if spec is not None and not is_cron:
        policy = spec.resolved(settings).retry
    return Runnable(
        name=function.name,
        coroutine=function.coroutine,
        spec=None if is_cron else spec,
        platform_cron=is_cron and hasattr(function.coroutine, CRON_ATTRIBUTE),
        timeout_s=timeout_s if function.timeout_s is None else function.timeout_s,
        max_tries=max_tries if function.max_tries is None else function.max_tries,
        keep_result_s=keep_result_s if function.keep_result_s is None else function.keep_result_s,
        keep_result_forever=(
            keep_result_forever if function.keep_result_forever is None else function.keep_result_forever
        ),
        policy=policy,
        # Read when the worker is built, not imported: arq's own tests patch it.
        keep_lease_s=arq.worker.keep_cronjob_progress if is_cron else None,  # type: ignore[attr-defined]
        cron_arguments=getattr(function, "arguments", None) if is_cron else None,
        limits=spec.limits() if spec is not None and not is_cron else None,
    )
