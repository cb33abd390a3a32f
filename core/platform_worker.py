"""arq's Worker with the platform's reliability added on top, keeping arq's queue and keys as they are:

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

import structlog
from arq.constants import abort_jobs_ss
from arq.utils import to_ms
from arq.worker import Worker
from redis.exceptions import RedisError

from core import attempts, codec, dead_letters, keys
from core.dead_letters import DeadLetter
from core.logging import configure_logging
from settings import Settings

log = structlog.get_logger("worker")
OUTAGE_BACKOFF_MAX_S = 2.0


class PlatformWorker(Worker):
    """Takes exactly arq's Worker arguments; the platform's settings arrive in `ctx["settings"]`."""

    # No __init__ of our own: arq's CLI passes a setting to the Worker only when the name is in the
    # class's signature, so the subclass keeps arq's signature and sets itself up when it starts.
    settings: Settings
    lease_s: float
    give_up: dict[str, DeadLetter]
    interrupted: set[str]
    _outage_backoff_s: float = 0.0

    def _set_up(self) -> None:
        self.ctx = dict(self.ctx)  # WorkerSettings.ctx is one dict; each worker needs its own
        self.settings = self.ctx["settings"]
        self.lease_s = self.settings.job_lease_seconds
        # arq claims a job with an in-progress key lasting the slowest timeout + 10 s; ours is a renewed lease.
        self.in_progress_timeout_s = self.lease_s
        self.give_up = self.ctx.setdefault("give_up", {})
        self.interrupted = set()
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
        try:
            await super()._poll_iteration()
        except (RedisError, OSError) as exc:
            self._outage_backoff_s = min(OUTAGE_BACKOFF_MAX_S, max(0.05, self._outage_backoff_s * 2))
            log.warning("worker.redis_unavailable", error=type(exc).__name__, retry_in_s=self._outage_backoff_s)
            await asyncio.sleep(self._outage_backoff_s)
        else:
            if self._outage_backoff_s:
                log.info("worker.redis_recovered")
                self._outage_backoff_s = 0.0

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
                        pipe.pexpire(keys.in_progress(job_id), int(self.lease_s * 1000), xx=True)
                    await pipe.execute()
            except (RedisError, OSError) as exc:
                log.warning("worker.lease_renewal_failed", jobs=len(running), error=type(exc).__name__)

    def _mark_interrupted(self) -> None:
        self.interrupted.update(job_id for job_id, task in self.tasks.items() if not task.done())

    def handle_sig(self, signum: Signals) -> None:
        self._mark_interrupted()
        super().handle_sig(signum)

    async def _wait_for_tasks_to_complete(self, signum: Signals) -> None:
        with suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._sleep_until_tasks_complete(), self._job_completion_wait)
        self._mark_interrupted()
        if self.interrupted:
            log.info("worker.grace_period_over", requeueing=len(self.interrupted))
        for task in self.tasks.values():
            if not task.done():
                task.cancel()
        if self.main_task:
            self.main_task.cancel()
        if self.on_stop:
            self.on_stop(signum)

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
        """arq's finish_job, plus the dead letter of a job that gave up and the try given back on shutdown."""
        letter = self.give_up.pop(job_id, None) if finish else None
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
            # arq gives up when it is about to start try max+1: every earlier try ended with its worker.
            tries -= 1
            reason = "max tries exceeded: its worker stopped while running it"
            history = attempts.with_lost_tries(history, tries)
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
