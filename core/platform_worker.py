"""arq's Worker with the platform's reliability and speed added on top, keeping arq's queue and keys:

- claims: due jobs are claimed in batches by one Lua script (core/claim.py) instead of four round trips
  each, and an idle worker sleeps on a wake list the enqueue side pushes to, instead of polling;
- leases: a running job's in-progress key lives `JOB_LEASE_SECONDS` and is renewed while the job runs,
  so a SIGKILLed worker's jobs run again within a lease, not after the slowest function's timeout;
- outages: a Redis error in the poll loop is logged and ridden out with backoff, never fatal;
- dead letters: a job that fails for good is written to the dead-letter set in the same transaction
  that ends it, so a crash can never record one without the other;
- shutdown: a job cancelled because its worker is stopping is requeued without losing a try.
"""

from __future__ import annotations

import asyncio
import time
from contextlib import suppress
from signal import Signals
from typing import Any

import structlog
from arq.constants import abort_jobs_ss, keep_cronjob_progress
from arq.jobs import SerializationError, deserialize_job_raw, serialize_result
from arq.utils import ms_to_datetime, timestamp_ms, to_ms
from arq.worker import JobExecutionFailed, Retry, RetryJob, Worker, no_result
from redis.exceptions import RedisError

from core import attempts, codec, dead_letters, keys
from core.claim import TRY_COUNTER_TTL_S, ClaimedJob, Claimer
from core.dead_letters import DeadLetter
from core.finish import Finisher
from core.logging import configure_logging
from settings import Settings

log = structlog.get_logger("worker")
OUTAGE_BACKOFF_MAX_S = 2.0
ABORT_CHECK_INTERVAL_S = 0.05


class PlatformWorker(Worker):
    """Takes exactly arq's Worker arguments; the platform's settings arrive in `ctx["settings"]`."""

    # No __init__ of our own: arq's CLI passes a setting to the Worker only when the name is in the
    # class's signature, so the subclass keeps arq's signature and sets itself up when it starts.
    settings: Settings
    lease_s: float
    give_up: dict[str, DeadLetter]
    interrupted: set[str]
    claimer: Claimer
    finisher: Finisher
    slot_freed: asyncio.Event
    idle_wait_s: float
    _outage_backoff_s: float = 0.0
    _last_abort_check: float = 0.0

    def _set_up(self) -> None:
        self.ctx = dict(self.ctx)  # WorkerSettings.ctx is one dict; each worker needs its own
        self.settings = self.ctx["settings"]
        self.lease_s = self.settings.job_lease_seconds
        # arq claims a job with an in-progress key lasting the slowest timeout + 10 s; ours is a renewed lease.
        self.in_progress_timeout_s = self.lease_s
        self.give_up = self.ctx.setdefault("give_up", {})
        self.interrupted = set()
        self.slot_freed = asyncio.Event()
        # Our poll iteration sleeps by itself (on the wake list), so arq's loop must not sleep as well.
        self.idle_wait_s, self.poll_delay_s = self.poll_delay_s, 0
        # arq's CLI installs its own log handler after importing the settings: put ours back.
        configure_logging(self.settings)

    async def main(self) -> None:
        self._set_up()
        renewer = asyncio.create_task(self._renew_leases_forever())
        try:
            await super().main()
        finally:
            renewer.cancel()
            with suppress(asyncio.CancelledError):
                await renewer

    async def _poll_iteration(self) -> None:
        """One turn of the loop: claim a batch, cancel aborted jobs, reap finished ones, then sleep until
        woken (a new job, a free slot, or the next deferred job coming due). Redis errors are ridden out."""
        try:
            await self._claim_and_wait()
        except (RedisError, OSError) as exc:
            self._outage_backoff_s = min(OUTAGE_BACKOFF_MAX_S, max(0.05, self._outage_backoff_s * 2))
            log.warning("worker.redis_unavailable", error=type(exc).__name__, retry_in_s=self._outage_backoff_s)
            await asyncio.sleep(self._outage_backoff_s)
            return
        if self._outage_backoff_s:
            log.info("worker.redis_recovered")
            self._outage_backoff_s = 0.0
            with suppress(RedisError, OSError):
                await self._retake_leases()

    async def _claim_and_wait(self) -> bool:
        free = self.max_jobs - self.job_counter
        if self.burst and self.max_burst_jobs >= 0:
            free = min(free, self.max_burst_jobs - self._jobs_started())
        next_due_ms: int | None = None
        claimed: list[ClaimedJob] = []
        if self.allow_pick_jobs and free > 0:
            if not hasattr(self, "claimer"):
                self.claimer = Claimer(self.pool, self.queue_name, self.lease_s)
            claimed, next_due_ms = await self.claimer.claim(timestamp_ms(), free, self.queue_read_limit)
            for job in await self._drop_own_jobs(claimed):
                self.job_counter += 1
                task = self.loop.create_task(self._run_claimed(job))
                task.add_done_callback(lambda _: self._release_sem_dec_counter_on_complete())
                self.tasks[job.job_id] = task
        now = time.monotonic()
        if self.allow_abort_jobs and now - self._last_abort_check >= ABORT_CHECK_INTERVAL_S:
            self._last_abort_check = now
            await self._cancel_aborted_jobs()
        for job_id, task in list(self.tasks.items()):
            if task.done():
                del self.tasks[job_id]
                task.result()  # surfaces a bug in run code, as arq does
        await self.heart_beat()
        if claimed and len(claimed) == free:
            return False  # there may be more due jobs: go round again at once
        return await self._wait(next_due_ms, at_capacity=self.job_counter >= self.max_jobs)

    async def _retake_leases(self) -> None:
        """After an outage, take back the leases of our running jobs that lapsed meanwhile (SET NX: a job
        another worker already claimed stays theirs)."""
        running = [job_id for job_id, task in self.tasks.items() if not task.done()]
        if running:
            async with self.pool.pipeline(transaction=False) as pipe:
                for job_id in running:
                    pipe.set(keys.in_progress(job_id), b"1", px=int(self.lease_s * 1000), nx=True)
                await pipe.execute()

    async def _drop_own_jobs(self, claimed: list[ClaimedJob]) -> list[ClaimedJob]:
        """A job this worker is still running can come back from a claim when its lease lapsed while Redis
        was away (the worker could not renew it). It is ours: keep running the one copy, renew the lease
        the claim just took, and give back the try the claim counted."""
        own = [job.job_id for job in claimed if job.job_id in self.tasks and not self.tasks[job.job_id].done()]
        if not own:
            return claimed
        async with self.pool.pipeline(transaction=False) as pipe:
            for job_id in own:
                pipe.decr(keys.retry(job_id))
            await pipe.execute()
        log.warning("worker.lease_lapsed", jobs=len(own))
        return [job for job in claimed if job.job_id not in own]

    async def _wait(self, next_due_ms: int | None, *, at_capacity: bool) -> bool:
        """Sleep at most POLL_DELAY_SECONDS, less when a deferred job comes due sooner. A worker with a
        free slot wakes on the enqueue side's token; a full one wakes when one of its jobs ends."""
        timeout_s = self.idle_wait_s
        if next_due_ms is not None:
            timeout_s = min(timeout_s, max(0.0, (next_due_ms - timestamp_ms()) / 1000))
        if timeout_s <= 0:
            return False
        if at_capacity or self.burst or not self.allow_pick_jobs:
            self.slot_freed.clear()
            with suppress(TimeoutError):
                await asyncio.wait_for(self.slot_freed.wait(), timeout_s)
                return True
            return False
        # BLPOP takes seconds with millisecond resolution; a token means a job was enqueued.
        token = await self.pool.blpop([keys.wake(self.queue_name)], timeout=max(0.001, round(timeout_s, 3)))  # type: ignore[misc, arg-type]
        return token is not None

    def _release_sem_dec_counter_on_complete(self) -> None:
        # arq's version also releases a semaphore that only its own claim path acquires.
        self.job_counter -= 1
        self.slot_freed.set()

    async def _run_claimed(self, job: ClaimedJob) -> None:
        """Run a claimed job: arq's run_job, fed by the claim script instead of its own read pipeline."""
        job_id, score, job_try = job.job_id, job.score, job.job_try
        start_ms = timestamp_ms()
        function_name, enqueue_time_ms = "<unknown>", 0
        args: tuple[Any, ...] = ()
        kwargs: dict[Any, Any] = {}

        async def job_failed(exc: BaseException) -> None:
            self.jobs_failed += 1
            result_data_ = serialize_result(
                function_name, args, kwargs, job_try, enqueue_time_ms, False, exc, start_ms, timestamp_ms(),
                f"{job_id}:{function_name}", self.queue_name, job_id=job_id, serializer=self.job_serializer,
            )  # fmt: skip
            await asyncio.shield(self.finish_failed_job(job_id, result_data_))

        if not job.payload:
            return await job_failed(JobExecutionFailed("job expired"))
        try:
            function_name, args, kwargs, enqueue_job_try, enqueue_time_ms = deserialize_job_raw(
                job.payload, deserializer=self.job_deserializer
            )
        except SerializationError as exc:
            log.warning("job.unreadable", job_id=job_id, error=str(exc))
            return await job_failed(exc)
        if job.aborted:
            return await job_failed(asyncio.CancelledError())
        function = self.functions.get(function_name)
        if function is None:
            log.warning("job.unknown_function", job_id=job_id, function=function_name)
            return await job_failed(JobExecutionFailed(f"function {function_name!r} not found"))
        keep_in_progress = keep_cronjob_progress if hasattr(function, "next_run") else None
        if enqueue_job_try and enqueue_job_try > job_try:
            job_try = enqueue_job_try
            await self.pool.setex(keys.retry(job_id), TRY_COUNTER_TTL_S, str(job_try))
        max_tries = self.max_tries if function.max_tries is None else function.max_tries
        if job_try > max_tries:
            return await job_failed(JobExecutionFailed(f"max {max_tries} retries exceeded"))

        result: Any = no_result
        finish = False
        incr_score: int | None = None
        timeout_s = self.job_timeout_s if function.timeout_s is None else function.timeout_s
        ctx = {**self.ctx, "job_id": job_id, "job_try": job_try, "enqueue_time": ms_to_datetime(enqueue_time_ms)}
        ctx["score"] = score
        if self.on_job_start:
            await self.on_job_start(ctx)
        start_ms = timestamp_ms()
        success = False
        try:
            self.job_tasks[job_id] = task = self.loop.create_task(function.coroutine(ctx, *args, **kwargs))
            try:
                result = await asyncio.wait_for(task, timeout_s)
            finally:
                del self.job_tasks[job_id]
        except (Exception, asyncio.CancelledError) as exc:
            if self.retry_jobs and isinstance(exc, Retry):
                incr_score = exc.defer_score + (timestamp_ms() - score) if exc.defer_score else None
                self.jobs_retried += 1
            elif job_id in self.aborting_tasks and isinstance(exc, asyncio.CancelledError):
                result, finish = exc, True
                self.aborting_tasks.remove(job_id)
                self.jobs_failed += 1
            elif self.retry_jobs and isinstance(exc, asyncio.CancelledError | RetryJob):
                self.jobs_retried += 1
            else:
                result, finish = exc, True
                self.jobs_failed += 1
        else:
            success, finish = True, True
            self.jobs_complete += 1
        finished_ms = timestamp_ms()

        keep_forever = (
            self.keep_result_forever if function.keep_result_forever is None else function.keep_result_forever
        )
        keep_s = self.keep_result_s if function.keep_result_s is None else function.keep_result_s
        result_data = None
        if result is not no_result and (keep_forever or keep_s > 0):
            result_data = serialize_result(
                function_name, args, kwargs, job_try, enqueue_time_ms, success, result, start_ms, finished_ms,
                f"{job_id}:{function_name}", self.queue_name, job_id=job_id, serializer=self.job_serializer,
            )  # fmt: skip
        if self.on_job_end:
            await self.on_job_end(ctx)
        await asyncio.shield(
            self.finish_job(job_id, finish, result_data, keep_s, keep_forever, incr_score, keep_in_progress)
        )
        if self.after_job_end:
            await self.after_job_end(ctx)
        return None

    async def _renew_leases_forever(self) -> None:
        interval_s = self.lease_s / 3
        while True:
            await asyncio.sleep(interval_s)
            running = [job_id for job_id, task in self.tasks.items() if not task.done()]
            if not running:
                continue
            try:
                async with self.pool.pipeline(transaction=False) as pipe:
                    for job_id in running:
                        pipe.pexpire(keys.in_progress(job_id), int(self.lease_s * 1000))
                    await pipe.execute()
            except (RedisError, OSError) as exc:
                log.warning("worker.lease_renewal_failed", jobs=len(running), error=type(exc).__name__)

    def _mark_interrupted(self) -> None:
        self.interrupted.update(job_id for job_id, task in self.tasks.items() if not task.done())

    def _interrupt_jobs(self) -> None:
        """Cancel the running jobs' own coroutines, not arq's tasks around them: each of those then
        records its job as requeued and ends normally, even if it was in the middle of finishing."""
        self._mark_interrupted()
        if self.interrupted:
            log.info("worker.interrupting", jobs=len(self.interrupted))
        for task in self.job_tasks.values():
            if not task.done():
                task.cancel()

    def handle_sig(self, signum: Signals) -> None:
        self._interrupt_jobs()
        if self.main_task:
            self.main_task.cancel()
        if self.on_stop:
            self.on_stop(signum)

    async def _wait_for_tasks_to_complete(self, signum: Signals) -> None:
        with suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._sleep_until_tasks_complete(), self._job_completion_wait)
        self._interrupt_jobs()
        if self.main_task:
            self.main_task.cancel()
        if self.on_stop:
            self.on_stop(signum)

    async def close(self) -> None:
        """arq's close, waiting for every run task to record its outcome without failing on one."""
        if not self._handle_signals:
            self.handle_sig(Signals.SIGUSR1)
        if not self._pool:
            return
        await asyncio.gather(*self.tasks.values(), return_exceptions=True)
        await self.pool.delete(self.health_check_key)
        if self.on_shutdown:
            await self.on_shutdown(self.ctx)
        await self.pool.aclose(close_connection_pool=True)
        self._pool = None

    async def finish_job(
        self,
        job_id: str,
        finish: bool,
        result_data: bytes | None,
        result_timeout_s: float | None,
        keep_result_forever: bool,
        incr_score: int | None,
        keep_in_progress: float | None,
    ) -> None:
        """arq's finish_job, plus the dead letter of a job that gave up and the try given back on shutdown;
        a plain finish goes through one Lua script instead of a transaction."""
        letter = self.give_up.pop(job_id, None) if finish else None
        if finish and letter is None:  # the common case, in one command (core/finish.py)
            if not hasattr(self, "finisher"):
                self.finisher = Finisher(self.pool, self.queue_name)
            expire = None if keep_result_forever else result_timeout_s
            await self.finisher.finish(job_id, result_data, to_ms(expire), to_ms(keep_in_progress))
            return
        give_back_try = not finish and job_id in self.interrupted
        async with self.pool.pipeline(transaction=True) as tr:
            delete_keys = []
            in_progress_key = keys.in_progress(job_id)
            if keep_in_progress is None:
                delete_keys += [in_progress_key]
            else:
                tr.pexpire(in_progress_key, to_ms(keep_in_progress))
            if finish:
                if result_data:
                    expire = None if keep_result_forever else result_timeout_s
                    tr.set(keys.result(job_id), result_data, px=to_ms(expire))
                delete_keys += [keys.retry(job_id), keys.job(job_id)]
                tr.zrem(abort_jobs_ss, job_id)
                tr.zrem(self.queue_name, job_id)
                if letter is not None:
                    dead_letters.stage(tr, letter, self.settings.dead_letter_ttl_seconds)
            elif incr_score:
                tr.zincrby(self.queue_name, incr_score, job_id)
            if give_back_try:
                tr.decr(keys.retry(job_id))
            if delete_keys:
                tr.delete(*delete_keys)
            await tr.execute()
        if letter is not None:
            log.warning("job.dead", job_id=job_id, function=letter.function, reason=letter.reason)
        if give_back_try:
            self.interrupted.discard(job_id)
            log.info("job.requeued_on_shutdown", job_id=job_id)

    async def finish_failed_job(self, job_id: str, result_data: bytes | None) -> None:
        """arq's path for a job that failed without running (max tries exceeded after crashes, unknown
        function, unreadable payload, expired): it ends in the dead-letter set, unless it was aborted."""
        letter = await self._letter_for_unrun_job(job_id, result_data)
        async with self.pool.pipeline(transaction=True) as tr:
            tr.delete(keys.retry(job_id), keys.in_progress(job_id), keys.job(job_id))
            tr.zrem(abort_jobs_ss, job_id)
            tr.zrem(self.queue_name, job_id)
            keep_result = self.keep_result_forever or self.keep_result_s > 0
            if result_data is not None and keep_result:
                expire = 0 if self.keep_result_forever else self.keep_result_s
                tr.set(keys.result(job_id), result_data, px=to_ms(expire))
            if letter is not None:
                dead_letters.stage(tr, letter, self.settings.dead_letter_ttl_seconds)
            await tr.execute()
        if letter is not None:
            log.warning("job.dead", job_id=job_id, function=letter.function, reason=letter.reason)

    async def _letter_for_unrun_job(self, job_id: str, result_data: bytes | None) -> DeadLetter | None:
        try:
            data = codec.loads(result_data) if result_data else {}
        except ValueError:
            data = {}
        error = data.get("r")
        if isinstance(error, codec.JobError) and error.aborted:
            return None
        error_type = error.type if isinstance(error, codec.JobError) else "JobExecutionFailed"
        message = error.message if isinstance(error, codec.JobError) else str(error or "failed before it ran")
        tries = int(data.get("t") or 0)
        history = attempts.parse(await self.pool.lrange(keys.attempts(job_id), 0, -1))  # type: ignore[misc]
        if "retries exceeded" in message:
            # arq gives up when it is about to start try max+1; a try that left no record died with its worker.
            tries -= 1
            filled = attempts.with_lost_tries(history, tries)
            lost = len(filled) > len(history)
            reason = "max tries exceeded: its worker stopped while running it" if lost else "max tries exceeded"
            history = filled
        elif "not found" in message:
            reason = "function not registered on the worker"
        elif error_type == "DeserializationError":
            reason = "unreadable payload"
        else:
            reason = message
        return DeadLetter(
            job_id=job_id,
            function=None if data.get("f") in (None, "<unknown>") else data["f"],
            kwargs=data.get("k") or {},
            tries=tries,
            reason=reason,
            error_type=error_type,
            error_message=message,
            queue=self.queue_name,
            failed_at=time.time(),
            attempts=history,
        )
