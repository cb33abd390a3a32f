"""Everything `worker.py` hands arq's Worker (our `PlatformWorker`), built from settings and the registry in
one place, so the real `arq worker.WorkerSettings` process and the tests' in-process workers run exactly the
same setup. Each job's options are resolved here once: the function's own, else the platform's defaults."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from arq.cron import CronJob
from arq.cron import cron as arq_cron
from arq.worker import Function, func
from pydantic import BaseModel

from core import codec, cron_ticks
from core.redis import check_redis_settings, open_worker_pool
from core.registry import CronSpec, JobSpec, Registry
from settings import Settings

# A cron tick's kept result is what stops a worker that stalled across the tick from running it again.
CRON_MIN_KEEP_RESULT_S = 3600
# Due ids one claim reads at most, per slot: enough to page past the jobs other workers are running.
READ_PER_SLOT = 20


def arq_function(spec: JobSpec, settings: Settings) -> Function:
    """A registered job as an arq Function under its public name, its options resolved."""
    options = spec.resolved(settings)
    return func(
        spec.function,  # type: ignore[arg-type]
        name=spec.name,
        timeout=options.timeout_s,
        max_tries=options.max_tries,
        keep_result=options.keep_result_s,
    )


@dataclass
class ScheduledCron(CronJob):
    """arq's CronJob for one schedule of the platform's: the kwargs each tick passes, the argument model the
    worker checks them against, and the time zone its next tick is found in (UTC schedules keep arq's)."""

    kwargs: dict[str, Any] = field(default_factory=dict)
    arguments: type[BaseModel] | None = None
    zone: ZoneInfo | None = None
    schedule: dict[str, Any] = field(default_factory=dict)

    def calculate_next(self, prev_run: datetime) -> None:
        if self.zone is None:
            super().calculate_next(prev_run)
        else:
            self.next_run = cron_ticks.next_tick(self.schedule, self.zone, prev_run)


def arq_cron_job(spec: CronSpec, settings: Settings) -> ScheduledCron:
    """One registered schedule. A failed tick is not retried or dead-lettered: its error shows in its last run
    (`GET /v1/cron`), and the next tick runs."""
    job = arq_cron(
        spec.function,  # type: ignore[arg-type]
        name=spec.name,
        run_at_startup=spec.run_at_startup,
        unique=True,
        timeout=spec.options.timeout_s or settings.job_timeout_seconds,
        keep_result=max(CRON_MIN_KEEP_RESULT_S, spec.options.keep_result_s or settings.keep_result_seconds),
        max_tries=1,
        **spec.schedule,  # type: ignore[arg-type]
    )
    fields = {name: getattr(job, name) for name in CronJob.__dataclass_fields__}
    return ScheduledCron(
        **fields, kwargs=spec.kwargs, arguments=spec.arguments, zone=spec.zone, schedule=dict(spec.schedule)
    )


def worker_kwargs(settings: Settings, registry: Registry) -> dict[str, Any]:
    """Keyword arguments for `arq.worker.Worker` (also the attributes of `WorkerSettings`)."""
    return {
        "functions": [arq_function(spec, settings) for spec in registry.jobs.values()],
        "cron_jobs": [arq_cron_job(spec, settings) for spec in registry.crons.values()],
        "ctx": {"settings": settings, "queue_name": settings.queue_name},
        "poll_delay": settings.poll_delay_seconds,
        "redis_pool": open_worker_pool(settings),
        "redis_settings": check_redis_settings(settings),  # read only by `arq --check`
        "queue_name": settings.queue_name,
        "queue_read_limit": settings.max_jobs * READ_PER_SLOT,
        "max_jobs": settings.max_jobs,
        "job_timeout": settings.job_timeout_seconds,
        "keep_result": settings.keep_result_seconds,
        "max_tries": settings.max_tries,
        "job_serializer": codec.dumps,
        "job_deserializer": codec.loads,
        "allow_abort_jobs": True,
        "job_completion_wait": settings.shutdown_grace_seconds,
        "health_check_interval": settings.health_check_interval_seconds,
        "log_results": False,
        "timezone": UTC,
    }
