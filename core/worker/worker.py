"""`PlatformWorker`: arq's Worker, built with arq's arguments, running jobs the platform's way.

It keeps arq's queue, keys and constructor (so `arq worker.WorkerSettings`, `arq --check` and arq's own test
suite run it) and owns the loop it changes: claim a batch in one round trip (core/worker/claim.py), run each
claim to one outcome (core/worker/run.py), write that outcome once, fenced by the claim's token
(core/worker/record.py), renew leases (core/worker/leases.py), sleep on wake tokens instead of polling, ride out
Redis outages, and on SIGTERM drain, then requeue what is still running without spending its try. What it still
takes from arq's Worker is listed in core/worker/arq_surface.py, with a test that fails when arq moves it.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Coroutine
from contextlib import suppress
from datetime import datetime, timedelta
from signal import Signals
from typing import Any

import structlog
from arq.connections import RedisSettings, create_pool
from arq.constants import abort_job_max_age
from arq.cron import CronJob
from arq.utils import timestamp_ms, to_ms, to_unix_ms
from arq.worker import Worker
from redis.exceptions import RedisError

from core import cron_pause, cron_runs, job_limits, keys, workers
from core.enqueue import enqueue_tick
from core.logging import configure_logging
from core.redis import log_redis_in_use, open_worker_pool
from core.registry import CRON_ATTRIBUTE
from core.worker import heartbeat, leases
from core.worker.claim import Claim, claim
from core.worker.functions import Runnable, resolve
from core.worker.metrics import MetricsBuffer, flush_metrics
from core.worker.outcome import Aborted, Failed, Lost, Requeued, Retrying, Succeeded
from core.worker.record import Ran, Storage, event_of, record
from core.worker.run import UNKNOWN_FUNCTION, Try, run_try
from settings import Settings, load_settings

log = structlog.get_logger("worker")
OUTAGE_BACKOFF_MAX_S = 2.0
ABORT_CHECK_INTERVAL_S = 0.05


class PlatformWorker(Worker):
    """arq's Worker; takes exactly arq's arguments. The platform's settings come from `ctx["settings"]` when
    the platform builds it (worker.py), else from the environment."""

    # arq's CLI passes a WorkerSettings entry on only if the Worker's signature names it: keep arq's.
    __signature__ = inspect.signature(Worker)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.ctx = dict(self.ctx)  # WorkerSettings.ctx is one dict shared by every worker built from it
        given = self.ctx.get("settings")
        # Built by the platform (worker.py): it announces itself in `/v1/workers`. Built from arq's arguments
        # alone: the same guarantees, with settings from the environment, and no keys of the platform's own.
        self.announces = isinstance(given, Settings)
        self.platform_settings: Settings = given if isinstance(given, Settings) else load_settings()
        self.lease_ms = int(self.platform_settings.job_lease_seconds * 1000)
        self.in_progress_timeout_s = self.platform_settings.job_lease_seconds
        self.info = workers.new_worker_info(self.queue_name)
        self.runnables: dict[str, Runnable] = {
            name: resolve(
                function,
                timeout_s=self.job_timeout_s,
                max_tries=self.max_tries,
                keep_result_s=self.keep_result_s,
                keep_result_forever=self.keep_result_forever,
                settings=self.platform_settings,
            )
            for name, function in self.functions.items()
        }
        self.claims: dict[str, Claim] = {}  # job id -> the claim its running copy holds
        self.ending: set[str] = set()  # tokens of claims whose outcome is being written
        self.lost_claims: dict[str, str] = {}  # job id -> token of a copy whose claim another one took
        self.stopping = False
        self.slot_freed = asyncio.Event()
        self._stop_deadline: float | None = None
        self._background: list[asyncio.Task[None]] = []
        self._outage_backoff_s = 0.0
        self._last_abort_check = 0.0
        self._last_renewal = time.monotonic()
        self._storages: dict[str, Storage] = {}
        self.metrics = MetricsBuffer(self.queue_name)
        self._claim_calls = 0
        self._claiming = False  # a claim is on its way: stopping waits for its answer, so no claim is orphaned
        self._cancel_after_claim = False
        self._exit = False  # main() returns at its next turn

    @property
    def worker_id(self) -> str:
        return self.info.worker_id

    # -- the loop -------------------------------------------------------------------------------------------

    async def main(self) -> None:
        """Connect, start, then claim and run until stopped (or, in burst mode, until the queue is empty).
        Safe to run again after `close()` (arq's `--watch` does on every reload)."""
        # One log format for the worker's own events and arq's; the host process's handlers stay where they are.
        configure_logging(self.platform_settings)
        if self._pool is None:
            self._pool = await self._connect()
        self.ctx["redis"] = self.pool
        self.stopping, self._stop_deadline, self._cancel_after_claim, self._exit = False, None, False, False
        started = {
            "worker_id": self.worker_id,
            "functions": sorted(self.functions),
            "max_jobs": self.max_jobs,
            "lease_s": self.lease_ms / 1000,
        }
        await self._log_started(started)
        if self.announces:  # where the claim script reads them (core/job_limits.py)
            limits = {name: runnable.limits for name, runnable in self.runnables.items()}
            await job_limits.publish(self.pool, self.queue_name, limits)
        if self.on_startup:
            await self.on_startup(self.ctx)
        self._background = [asyncio.create_task(self._renew_forever())]
        if self.announces:
            interval_s = self.platform_settings.health_check_interval_seconds
            self._background.append(
                asyncio.create_task(
                    heartbeat.beat_forever(self.pool, self.info, interval_s, self.counters, self._index_keeps())
                )
            )
        try:
            while not self._exit:  # set on stop: a cancel of main() alone can be lost in a wait it interrupts
                await self._poll_iteration()
                if self.burst and await self._burst_done():
                    return
        finally:
            for task in self._background:
                task.cancel()
            await asyncio.gather(*self._background, return_exceptions=True)

    async def _log_started(self, fields: dict[str, Any]) -> None:
        """Which Redis (as the platform's settings name it) and whether it keeps anything on disk; a worker
        built from arq's arguments alone has a pool of its own, so it names only its queue."""
        if self.announces:
            with suppress(RedisError, OSError):
                await log_redis_in_use(self.pool, self.platform_settings, log, "worker.started", **fields)
                return
        log.info("worker.started", queue=self.queue_name, **fields)

    async def _connect(self) -> Any:
        if self.announces:
            return open_worker_pool(self.platform_settings)
        return await create_pool(
            self.redis_settings or RedisSettings(),
            job_serializer=self.job_serializer,
            job_deserializer=self.job_deserializer,
            default_queue_name=self.queue_name,
            expires_extra_ms=self.expires_extra_ms,
        )

    async def _burst_done(self) -> bool:
        if 0 <= self.max_burst_jobs <= self.jobs_started() or await self.pool.zcard(self.queue_name) == 0:
            await asyncio.gather(*self.tasks.values(), return_exceptions=True)
            return True
        return False

    def counters(self) -> workers.WorkerStats:
        """What the heartbeat publishes: arq's own counters, the one set the worker keeps."""
        return workers.WorkerStats(self.jobs_complete, self.jobs_failed, self.jobs_retried, len(self.tasks))

    def jobs_started(self) -> int:
        return self.jobs_complete + self.jobs_retried + self.jobs_failed + len(self.tasks)

    async def _poll_iteration(self) -> None:
        """One turn: renew overdue leases, claim a batch, cancel aborted jobs, then sleep until woken (a new
        job, a free slot, or the next deferred job coming due). Redis errors are ridden out with backoff."""
        try:
            if self.claims and time.monotonic() - self._last_renewal > self.lease_ms / 2000:
                await self._renew_leases()  # before claiming: a lease that lapsed in an outage is taken back first
            if self.metrics.counts and self.metrics.due(alone=False):
                # No finish call carried them for a second (a burst ended, or only long jobs run): hand over.
                await flush_metrics(self.pool, self.metrics)
            await self._claim_and_wait()
        except (RedisError, OSError) as exc:
            self._outage_backoff_s = min(OUTAGE_BACKOFF_MAX_S, max(0.05, self._outage_backoff_s * 2))
            log.warning("worker.redis_unavailable", error=type(exc).__name__, retry_in_s=self._outage_backoff_s)
            await asyncio.sleep(self._outage_backoff_s)
            return
        if self._outage_backoff_s:
            log.info("worker.redis_recovered")
            self._outage_backoff_s = 0.0

    async def _claim_and_wait(self) -> None:
        free = self.max_jobs - self.job_counter
        if self.burst and self.max_burst_jobs >= 0:
            free = min(free, self.max_burst_jobs - self.jobs_started())
        next_due_ms: int | None = None
        claimed: list[Claim] = []
        if self.allow_pick_jobs and not self.stopping and free > 0:
            self._claim_calls += 1
            self._claiming = True
            try:
                claimed, next_due_ms = await claim(
                    self.pool,
                    self.queue_name,
                    self.worker_id,
                    timestamp_ms(),
                    free,
                    self.queue_read_limit,
                    self.lease_ms,
                    self._claim_calls,
                    publish=self.announces,
                    running=self.claims.keys(),
                )
                for held in claimed:
                    self._start(held)  # when stopping, each run gives its job straight back
            finally:
                self._claiming = False
                if self._cancel_after_claim and self.main_task:
                    self.main_task.cancel()
        now = time.monotonic()
        if self.allow_abort_jobs and now - self._last_abort_check >= ABORT_CHECK_INTERVAL_S:
            self._last_abort_check = now
            await self._cancel_aborted_jobs()
        await self.heart_beat()
        if claimed and len(claimed) == free:
            return  # there may be more due jobs: go round again at once
        await self._wait(next_due_ms, at_capacity=self.job_counter >= self.max_jobs)

    async def _wait(self, next_due_ms: int | None, *, at_capacity: bool) -> None:
        """Sleep at most POLL_DELAY_SECONDS, less when a deferred job comes due sooner. A worker with a free
        slot wakes on the enqueue side's token; a full one wakes when one of its jobs ends."""
        timeout_s = self.poll_delay_s
        if next_due_ms is not None:
            timeout_s = min(timeout_s, max(0.0, (next_due_ms - timestamp_ms()) / 1000))
        if timeout_s <= 0:
            return
        if at_capacity or self.burst or not self.allow_pick_jobs or self.stopping:
            self.slot_freed.clear()
            with suppress(TimeoutError):
                async with asyncio.timeout(timeout_s):  # not wait_for: on 3.11 it can swallow a cancel
                    await self.slot_freed.wait()
            return
        # BLPOP takes seconds with millisecond resolution; a token means a job was enqueued.
        await self.pool.blpop([keys.wake(self.queue_name)], timeout=max(0.001, round(timeout_s, 3)))  # type: ignore[misc, arg-type]

    # -- one job --------------------------------------------------------------------------------------------

    def _start(self, held: Claim) -> None:
        running = self.claims.get(held.job_id)
        if running is not None and running.token not in self.ending:
            # Our own copy's lease lapsed (Redis was away longer than the lease) and this claim took the job:
            # that copy no longer holds it. It is cancelled; the new claim runs.
            log.warning("job.lease_lapsed", job_id=held.job_id)
            self._lose(running)
        self.claims[held.job_id] = held
        self.job_counter += 1
        task = self.loop.create_task(self._run(held))
        task.add_done_callback(self._on_run_done)
        self.tasks[held.job_id] = task

    def _on_run_done(self, task: asyncio.Task[None]) -> None:
        self.job_counter -= 1
        self.slot_freed.set()
        for job_id, running in list(self.tasks.items()):
            if running is task:
                del self.tasks[job_id]

    async def _run(self, held: Claim) -> None:
        """Run one claim to its outcome and write it; never raises (a bug here is logged, not fatal)."""
        structlog.contextvars.bind_contextvars(job_id=held.job_id, try_=held.job_try)
        try:
            tried = await run_try(self, held)
            held = tried.claim
            written: bool | None = False
            if isinstance(tried.outcome, Lost):
                log.warning("job.lease_lost", function=tried.function)
            else:
                self.ending.add(held.token)
                if tried.ctx is not None and self.on_job_end:
                    await self.on_job_end(tried.ctx)
                written = await self._record(held, tried)
            self._count_and_log(tried, written)
            if written and tried.runnable is not None and tried.runnable.platform_cron:
                await self._record_cron_end(tried)
            if tried.ctx is not None and self.after_job_end:
                await self.after_job_end(tried.ctx)
        except Exception:
            log.exception("worker.run_failed", job_id=held.job_id)
        finally:
            self.ending.discard(held.token)
            running = self.claims.get(held.job_id)
            if running is not None and running.token == held.token:
                del self.claims[held.job_id]
            if self.lost_claims.get(held.job_id) == held.token:
                del self.lost_claims[held.job_id]

    async def _record(self, held: Claim, tried: Try) -> bool | None:
        """Write the try's outcome; the job metrics gathered so far ride along when due, and what a write that
        did not happen carried is kept (its own try's share taken back)."""
        if not self.announces:  # built from arq's arguments alone: arq's keys and no others
            storage = self._storage(tried.runnable)
            return await record(self.pool, self.queue_name, held, tried.outcome, storage, self._give_up)
        function = "" if tried.function == UNKNOWN_FUNCTION else tried.function
        queue_wait_s = (held.started_ms - held.score) / 1000
        seen = self.metrics.observe(function, event_of(tried.outcome), tried.duration_s, queue_wait_s, timestamp_ms())
        flushing = self.metrics.due(alone=len(self.tasks) <= 1)
        text, taken = self.metrics.take() if flushing else ("", None)
        storage = self._storage(tried.runnable)
        written = await record(
            self.pool, self.queue_name, held, tried.outcome, storage, self._give_up, Ran(function, text, tried.workflow)
        )
        if not written:
            if taken is not None:
                self.metrics.give_back(taken)
            self.metrics.forget(seen)
        return written

    async def _record_cron_end(self, tried: Try) -> None:
        """The end of a cron tick's run, for `GET /v1/cron`: only an outcome that ends the tick (a tick given
        back to the queue by a stopping worker runs again, and is shown when it ends)."""
        match tried.outcome:
            case Succeeded():
                status, error = "complete", None
            case Failed(error=failure):
                status, error = "failed", f"{failure.type}: {failure.message}"
            case Aborted():
                status, error = "aborted", None
            case _:
                return
        assert tried.runnable is not None
        with suppress(RedisError, OSError):
            await cron_runs.record_end(self.pool, tried.runnable.name, status, tried.duration_s or 0.0, error)

    def _storage(self, runnable: Runnable | None) -> Storage:
        """How long a function's outcome records live (made once per function)."""
        name = runnable.name if runnable else ""
        found = self._storages.get(name)
        if found is None:
            found = self._storages[name] = self._make_storage(runnable)
        return found

    def _make_storage(self, runnable: Runnable | None) -> Storage:
        keep_s = self.keep_result_s if runnable is None else runnable.keep_result_s
        forever = self.keep_result_forever if runnable is None else runnable.keep_result_forever
        dead_ttl_s = self.platform_settings.dead_letter_ttl_seconds
        return Storage(
            result_px=None if forever else to_ms(keep_s),
            keep_lease_px=to_ms(runnable.keep_lease_s) if runnable and runnable.keep_lease_s else None,
            dead_letter_px=int(dead_ttl_s * 1000) if dead_ttl_s else None,
        )

    def _index_keeps(self) -> heartbeat.IndexKeeps:
        """How long each function's ended jobs stay in the job index: as long as their records."""
        return [
            (name, self._storage(runnable).result_px, self._storage(runnable).dead_letter_px)
            for name, runnable in self.runnables.items()
        ]

    def _give_up(self) -> bool:
        """Whether to stop retrying an outcome Redis will not take: only once stopping, after a lease."""
        return self._stop_deadline is not None and time.monotonic() > self._stop_deadline

    def log_started(self, held: Claim, function: str, start_ms: int, enqueue_time_ms: int) -> None:
        structlog.contextvars.bind_contextvars(function=function)
        quiet = self._is_platform_cron(function)
        (log.debug if quiet else log.info)("job.started", queued_ms=max(0, start_ms - enqueue_time_ms))

    def _is_platform_cron(self, function: str) -> bool:
        runnable = self.runnables.get(function)
        return runnable is not None and runnable.platform_cron

    def _count_and_log(self, tried: Try, written: bool | None) -> None:
        """The one place a try's end is counted and logged."""
        outcome = tried.outcome
        fields: dict[str, Any] = {"function": tried.function}
        if tried.duration_s is not None:
            fields["duration_ms"] = round(tried.duration_s * 1000, 2)
        if written is False and not isinstance(outcome, Lost):
            log.warning("job.stale_outcome", outcome=type(outcome).__name__.lower(), **fields)
            return
        if written is None:
            return
        match outcome:
            case Succeeded():
                self.jobs_complete += 1
                (log.debug if self._is_platform_cron(tried.function) else log.info)("job.succeeded", **fields)
            case Retrying(delay_s=delay_s, error=error):
                self.jobs_retried += 1
                detail = {"error": error.type, "message": error.message[:200]} if error else {}
                log.info("job.retrying", retry_in_s=round(delay_s, 3), **detail, **fields)
            case Failed(error=error, dead_letter=letter):
                self.jobs_failed += 1
                log.warning(
                    "job.failed",
                    kind=error.kind,
                    error=error.type,
                    message=error.message[:500],
                    traceback=error.traceback,
                    **fields,
                )
                if letter is not None:
                    log.warning("job.dead", reason=letter.reason, **fields)
            case Aborted(before_start=before_start):
                self.jobs_failed += 1
                log.info("job.aborted", before_start=before_start, **fields)
            case Requeued():
                self.jobs_retried += 1
                log.info("job.requeued", **fields)

    # -- leases and aborts -----------------------------------------------------------------------------------

    async def _renew_forever(self) -> None:
        while True:
            await asyncio.sleep(self.lease_ms / 3000)
            try:
                await self._renew_leases()
            except (RedisError, OSError) as exc:
                log.warning("worker.lease_renewal_failed", jobs=len(self.claims), error=type(exc).__name__)

    async def _renew_leases(self) -> None:
        held = [c for c in self.claims.values() if c.token not in self.ending]
        lost = await leases.renew(self.pool, held, self.lease_ms)
        self._last_renewal = time.monotonic()
        slots = [(c.slot, c.token) for c in held if c.slot and c not in lost]
        if slots:  # a concurrency slot lives as long as its claim's lease
            await job_limits.renew_slots(self.pool, self.queue_name, slots, timestamp_ms() + self.lease_ms)
        for claim_ in lost:
            self._lose(claim_)

    def _lose(self, held: Claim) -> None:
        """Another claim holds this job now: cancel our copy; it writes nothing. (A copy that ended while the
        renewal was on its way is not lost: its outcome was written first.)"""
        if self.claims.get(held.job_id) is not held or held.token in self.ending:
            return
        log.warning("job.lease_lost", job_id=held.job_id)
        self.lost_claims[held.job_id] = held.token
        task = self.job_tasks.get(held.job_id)
        if task is not None and not task.done():
            task.cancel()

    async def _cancel_aborted_jobs(self) -> None:
        """Cancel our running jobs that a client aborted (their run records them as aborted)."""
        async with self.pool.pipeline(transaction=True) as pipe:
            pipe.zrange(keys.ABORT_SET, 0, -1)
            pipe.zremrangebyscore(keys.ABORT_SET, "-inf", timestamp_ms() - abort_job_max_age)
            requested, _ = await pipe.execute()
        aborted = []
        for raw in requested:
            job_id = raw.decode()
            task = self.job_tasks.get(job_id)
            if task is not None and not task.done():
                aborted.append(job_id)
                task.cancel()
        if aborted:
            self.aborting_tasks.update(aborted)
            await self.pool.zrem(keys.ABORT_SET, *aborted)

    # -- cron -----------------------------------------------------------------------------------------------

    async def run_cron(self, n: datetime, delay: float, num_windows: int = 2) -> None:
        """arq's scheduler, with the platform's cron ticks enqueued under ids in the platform's namespace
        (clients cannot take one first), with their schedule's kwargs. Each tick is one job id, so it runs once
        across all workers. A paused schedule's tick is skipped; the pause state is read only when a platform
        tick is due, so a worker pays no extra round trip on the turns in between."""
        cutoff = n + timedelta(seconds=delay * num_windows)
        due = []
        for cron_job in self.cron_jobs:
            if cron_job.next_run is None:
                if not cron_job.run_at_startup:
                    cron_job.calculate_next(n)
                    continue
                cron_job.next_run = n
            if cron_job.next_run < cutoff:
                due.append(cron_job)
        if not due:
            return
        paused: set[str] = set()
        if any(hasattr(cron_job.coroutine, CRON_ATTRIBUTE) for cron_job in due):
            paused = await cron_pause.paused_names(self.pool)
        enqueues: list[Coroutine[Any, Any, object]] = []
        for cron_job in due:
            assert cron_job.next_run is not None
            if cron_job.name in paused and hasattr(cron_job.coroutine, CRON_ATTRIBUTE):
                log.debug("cron.tick_paused", cron=cron_job.name, tick=cron_job.next_run.isoformat())
                cron_job.calculate_next(cron_job.next_run)
                continue
            defer_until = cron_job.next_run if cron_job.next_run > datetime.now(tz=self.timezone) else None
            job_id = self._cron_job_id(cron_job)
            kwargs: dict[str, Any] = getattr(cron_job, "kwargs", {})
            if self.announces:  # published and indexed like any job; arq's own way for an arq-built worker
                enqueues.append(enqueue_tick(self.pool, self.queue_name, cron_job.name, job_id, defer_until, kwargs))
            else:
                enqueues.append(
                    self.pool.enqueue_job(
                        cron_job.name, _job_id=job_id, _queue_name=self.queue_name, _defer_until=defer_until, **kwargs
                    )
                )
            cron_job.calculate_next(cron_job.next_run)
        if enqueues:
            await asyncio.gather(*enqueues)

    @staticmethod
    def _cron_job_id(cron_job: CronJob) -> str | None:
        assert cron_job.next_run is not None
        if cron_job.job_id:
            return cron_job.job_id
        tick_ms = to_unix_ms(cron_job.next_run)
        if hasattr(cron_job.coroutine, CRON_ATTRIBUTE):
            return keys.cron_tick_job_id(cron_job.name, tick_ms)
        return f"{cron_job.name}:{tick_ms}" if cron_job.unique else None

    # -- stopping -------------------------------------------------------------------------------------------

    def _interrupt_jobs(self) -> None:
        """Cancel the running jobs' own coroutines, not the tasks around them: each of those then writes its
        job back to the queue (try given back) and ends normally, even in the middle of finishing."""
        self.stopping = True
        self._stop_deadline = time.monotonic() + self.lease_ms / 1000
        running = [task for task in self.job_tasks.values() if not task.done()]
        if running:
            log.info("worker.interrupting", jobs=len(running))
        for task in running:
            task.cancel()

    def handle_sig(self, signum: Signals) -> None:
        """Stop now: running jobs go back to the queue."""
        self._interrupt_jobs()
        self._exit = True
        self.slot_freed.set()
        if self._claiming:
            self._cancel_after_claim = True
        elif self.main_task:
            self.main_task.cancel()
        if self.on_stop:
            self.on_stop(Signals(signum))

    def handle_sig_wait_for_completion(self, signum: Signals) -> None:
        """Stop taking jobs, let running ones finish for up to the grace period, then stop as `handle_sig`."""
        signal = Signals(signum)
        log.info("worker.stopping", signal=signal.name, running=len(self.tasks), grace_s=self._job_completion_wait)
        self.allow_pick_jobs = False
        self.stopping = True
        self.slot_freed.set()
        self.loop.create_task(self._drain_then_stop(signal))

    async def _drain_then_stop(self, signal: Signals) -> None:
        with suppress(TimeoutError):
            async with asyncio.timeout(self._job_completion_wait):
                await self._until_idle()
        self.handle_sig(signal)

    async def _until_idle(self) -> None:
        while self.tasks:
            self.slot_freed.clear()
            await self.slot_freed.wait()

    async def close(self) -> None:
        """Wait for every run to write its outcome, remove this worker's health and heartbeat keys, close."""
        if not self._handle_signals:
            self.handle_sig(Signals.SIGUSR1)
        if self._pool is None:
            return
        await asyncio.gather(*self.tasks.values(), return_exceptions=True)
        with suppress(RedisError, OSError):
            await self.pool.delete(self.health_check_key)
            await flush_metrics(self.pool, self.metrics)
        if self.announces:
            await heartbeat.forget(self.pool, self.info)
        if self.on_shutdown:
            await self.on_shutdown(self.ctx)
        await self.pool.aclose(close_connection_pool=True)
        self._pool = None
        log.info("worker.stopped", complete=self.jobs_complete, failed=self.jobs_failed, retried=self.jobs_retried)
