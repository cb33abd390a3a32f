"""Running one try, from a claim to its outcome: the one place where the end of a try is decided.

Whatever the job does (returns something JSON cannot carry, raises any exception, `SystemExit` included, runs
past its timeout, is aborted, is cancelled because its worker stops), the try ends as exactly one `Outcome`.
The worker then writes it (core/worker/record.py) and logs and counts it (core/worker/worker.py).
"""

from __future__ import annotations

import asyncio
import os
import time
import traceback
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, replace
from types import TracebackType
from typing import TYPE_CHECKING, Any

import structlog
from arq.jobs import DeserializationError
from arq.utils import ms_to_datetime, timestamp_ms
from arq.worker import JobExecutionFailed, Retry, RetryJob
from pydantic import TypeAdapter, ValidationError
from pydantic_core import PydanticSerializationError

from core import attempts, chains, codec, correlation, cron_runs, keys, tracing, wire
from core.codec import ErrorKind, JobError
from core.dead_letters import DeadLetter
from core.exact_json import Unencodable, dumps_exact
from core.retry import Fatal
from core.worker.claim import TRY_COUNTER_TTL_S, Claim
from core.worker.functions import Runnable
from core.worker.outcome import Aborted, Failed, Lost, Outcome, Requeued, Retrying, Succeeded

if TYPE_CHECKING:
    from core.worker.worker import PlatformWorker


UNKNOWN_FUNCTION = "<unknown>"  # a try whose payload could not be read


class JobRaisedBaseException(Exception):
    """The job raised a BaseException (SystemExit, KeyboardInterrupt, ...): a failed try, not a dead worker."""

    def __init__(self, original: BaseException) -> None:
        super().__init__(str(original) or type(original).__name__)
        self.original = original


@dataclass(frozen=True)
class Try:
    """A try as it ended: its outcome, and what the worker needs to log, count and hook it."""

    claim: Claim
    outcome: Outcome
    function: str
    runnable: Runnable | None
    duration_s: float | None
    ctx: dict[str, Any] | None
    workflow: tuple[str | bytes | int, ...] = ()  # chain and unique work its finish call carries


async def _contained(call: Callable[[], Awaitable[Any]]) -> Any:
    """Run the try's steps; a BaseException they raise (SystemExit, KeyboardInterrupt, or a CancelledError the
    job raised itself, not a cancel of this task by the worker) becomes an ordinary failure instead of ending
    the worker or passing for an abort."""
    try:
        return await call()
    except Exception:
        raise
    except asyncio.CancelledError as exc:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise  # the worker cancelled it: an abort, a timeout, a lost lease or a shutdown
        raise JobRaisedBaseException(exc) from exc
    except BaseException as exc:
        raise JobRaisedBaseException(exc) from exc


async def _validated_call(
    runnable: Runnable, ctx: dict[str, Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    """The job's call; a platform job's stored kwargs are validated against its signature first."""
    spec = runnable.spec
    if spec is None and runnable.cron_arguments is not None and not args:  # a schedule's kwargs, as JSON
        try:
            arguments = runnable.cron_arguments.model_validate(kwargs)
        except ValidationError as exc:
            raise InvalidArguments(str(exc)) from None
        values = {name: getattr(arguments, name) for name in type(arguments).model_fields}
        return await runnable.coroutine(ctx, **values)
    if spec is None:
        return await runnable.coroutine(ctx, *args, **kwargs)
    if args:
        raise InvalidArguments(f"{spec.name} takes keyword arguments only")
    try:
        arguments = spec.validate(kwargs)
    except ValidationError as exc:
        raise InvalidArguments(str(exc)) from None
    return await spec.function(ctx, **{name: getattr(arguments, name) for name in type(arguments).model_fields})


class InvalidArguments(Fatal, ValueError):
    """The job's stored kwargs do not match its signature (the worker validates what the API validated)."""


def encode_exact(value: Any, contract: TypeAdapter[Any] | None) -> wire.EncodedJSON:
    """The result as JSON, against the job's declared return type when it has one; raises Unencodable."""
    if contract is not None:
        try:
            value = contract.dump_python(value, mode="json", warnings="error")
        except (PydanticSerializationError, ValueError, TypeError) as exc:
            raise Unencodable((), f"does not match its declared return type ({str(exc).strip()[:200]})") from None
    return wire.EncodedJSON(dumps_exact(value))


_WORKER_DIR = os.path.dirname(__file__)
_ASYNCIO_DIR = os.path.dirname(asyncio.__file__)


def _job_frames(tb: TracebackType | None) -> TracebackType | None:
    """The traceback from the job's own code on: the worker's and asyncio's frames above it tell a job author
    nothing."""
    while tb is not None and tb.tb_next is not None:
        filename = tb.tb_frame.f_code.co_filename
        if not filename.startswith((_WORKER_DIR, _ASYNCIO_DIR)):
            break
        tb = tb.tb_next
    return tb


def _error_of(exc: BaseException, timeout_s: float) -> JobError:
    """The platform's view of what a job raised: its kind, type, message and bounded traceback."""
    if isinstance(exc, TimeoutError):
        return JobError.of_kind(ErrorKind.timeout, f"timed out after {timeout_s:g}s")
    original = exc.original if isinstance(exc, JobRaisedBaseException) else exc
    kind = ErrorKind.invalid_arguments if isinstance(exc, InvalidArguments) else ErrorKind.exception
    try:
        message = attempts.bounded(str(original), attempts.MAX_MESSAGE_CHARS)
    except Exception as str_failed:
        message = f"<str() of the exception raised {type(str_failed).__name__}>"
    try:
        text = "".join(traceback.format_exception(type(original), original, _job_frames(original.__traceback__)))
    except Exception:
        text = f"{type(original).__name__}: {message}"
    type_name = type(original).__name__
    if kind is ErrorKind.invalid_arguments:
        type_name = "InvalidArguments"
    return JobError(type_name, message, kind, attempts.bounded_traceback(text))


class _Runner:
    """One claim's try; its methods are the steps, each returning the outcome or handing on."""

    def __init__(self, worker: PlatformWorker, claim: Claim) -> None:
        self.worker = worker
        self.claim = claim
        self.function = UNKNOWN_FUNCTION
        self.args: tuple[Any, ...] = ()
        self.kwargs: dict[str, Any] = {}
        self.enqueue_time_ms = 0
        self.start_ms = claim.started_ms or timestamp_ms()
        self.runnable: Runnable | None = None
        self.duration_s: float | None = None
        self.ctx: dict[str, Any] | None = None
        self.payload: wire.JobPayload | None = None
        self.result_json: wire.EncodedJSON | None = None
        self.carried: correlation.Correlation | None = None

    def done(self, outcome: Outcome) -> Try:
        return Try(self.claim, outcome, self.function, self.runnable, self.duration_s, self.ctx, self.workflow(outcome))

    def workflow(self, outcome: Outcome) -> tuple[str | bytes | int, ...]:
        """What the finish call does for the job's chain and unique lock when it ends for good: on success its
        children are enqueued with the result; on a failure for good (a death included) or an abort they end as
        not run; the lock is released. Nothing for a job in no chain and without a lock, or a try that does not
        end the job."""
        payload = self.payload
        if payload is None or (not payload.chained and payload.unique is None):
            return ()
        lock, job_id = payload.unique or "", self.claim.job_id
        if not payload.chain:
            chain_work: tuple[str | bytes | int, ...] = ("link",) if payload.parent is not None else ("",)
        else:
            match outcome:
                case Succeeded() if self.result_json is not None:
                    try:
                        made = chains.child_payloads(job_id, payload.chain, self.result_json, timestamp_ms())
                    except Exception as exc:  # never a try that cannot be written: its children end instead
                        return ("end", lock, f"its parent {job_id}'s result could not be passed on ({exc!r:.200})")
                    expires_ms = self.worker.expires_extra_ms
                    run: list[str | bytes | int] = ["run", lock, keys.wake(self.worker.queue_name)]
                    for child_id, function, child_payload in made:
                        run += [child_id, function, child_payload, expires_ms]
                    return tuple(run)
                case Succeeded():
                    return ("end", lock, f"its parent {job_id} returned no result to pass on")
                case Failed(error=error):
                    return ("end", lock, f"its parent {job_id} failed for good ({error.type}: {error.message})")
                case Aborted():
                    return ("end", lock, f"its parent {job_id} was aborted")
                case _:
                    return ()
        match outcome:
            case Succeeded() | Failed() | Aborted():
                return (*chain_work, lock)
            case _:
                return ()

    def header(self) -> wire.ResultHeader:
        return wire.ResultHeader(
            self.claim.job_id, self.function, self.args, self.kwargs, self.claim.job_try, self.enqueue_time_ms,
            None if self.claim.aborted else self.start_ms, timestamp_ms(), self.worker.queue_name, self.claim.score,
        )  # fmt: skip

    def keeps_result(self) -> bool:
        runnable = self.runnable
        if runnable is None:
            return self.worker.keep_result_forever or self.worker.keep_result_s > 0
        return runnable.keep_result_forever or runnable.keep_result_s > 0

    def failure_payload(self, error: JobError, as_arq: BaseException | None = None) -> bytes | None:
        """The failed result to store: the platform's error under its JSON codec; under arq's own serializer
        (a worker built from arq's arguments alone), what arq itself stores: `as_arq`, else the error."""
        if not self.keeps_result():
            return None
        stored: BaseException = error
        if self.worker.job_serializer is not codec.dumps and as_arq is not None:
            stored = as_arq
        return wire.encode_result(self.header(), False, stored, self.worker.job_serializer)

    def dead_letter(self, error: JobError, reason: str, tries: int, requeueable: bool = True) -> DeadLetter:
        return DeadLetter(
            job_id=self.claim.job_id,
            function=self.function if requeueable and self.function != UNKNOWN_FUNCTION else None,
            kwargs=self.kwargs,
            tries=tries,
            reason=reason,
            kind=error.kind,
            error_type=error.type,
            error_message=error.message,
            traceback=error.traceback,
            queue=self.worker.queue_name,
        )

    def not_run(self, kind: ErrorKind, message: str, reason: str, as_arq: BaseException, *, requeueable: bool) -> Try:
        error = JobError.of_kind(kind, message)
        letter = self.dead_letter(error, reason, 0, requeueable)
        return self.done(Failed(error, self.failure_payload(error, as_arq), None, letter))

    async def run(self) -> Try:
        claim = self.claim
        if self.worker.stopping:  # claimed as the worker began to stop: back to the queue, untried
            return self.done(Requeued())
        if claim.payload is None:
            message = "its payload expired before a worker took it"
            expired = JobExecutionFailed("job expired")
            return self.not_run(ErrorKind.expired, message, "expired", expired, requeueable=False)
        try:
            payload = wire.decode_job(claim.payload, self.worker.job_deserializer)
        except wire.UnreadableJob as exc:
            unreadable = DeserializationError("unable to deserialize job")
            kind = ErrorKind.unreadable_payload
            return self.not_run(kind, str(exc), "unreadable payload", unreadable, requeueable=False)
        self.function, self.args, self.kwargs = payload.function, payload.args, payload.kwargs
        self.enqueue_time_ms = payload.enqueue_time_ms
        self.payload = payload
        carried = self.carried = payload.correlation
        if carried is not None:  # this try's task only: its log lines, and what it enqueues, carry them
            correlation.current.set(carried)
            if carried.request_id is not None:
                structlog.contextvars.bind_contextvars(request_id=carried.request_id)
        if claim.aborted:
            error = JobError.of_kind(ErrorKind.aborted, "aborted before it started")
            return self.done(Aborted(self.failure_payload(error, asyncio.CancelledError()), before_start=True))
        runnable = self.runnable = self.worker.runnables.get(payload.function)
        if runnable is None:
            message = f"function {payload.function!r} is not registered on this worker"
            not_found = JobExecutionFailed(f"function {payload.function!r} not found")
            reason = "function not registered"
            return self.not_run(ErrorKind.unknown_function, message, reason, not_found, requeueable=True)
        if payload.job_try and payload.job_try > claim.job_try:  # arq's `_job_try`: the enqueuer set the count
            self.claim = claim = replace(claim, job_try=payload.job_try)
            await self.worker.pool.setex(keys.retry(claim.job_id), TRY_COUNTER_TTL_S, str(claim.job_try))
        if claim.job_try > runnable.max_tries:
            return self.tries_used_up(runnable)
        return await self.execute(runnable)

    def tries_used_up(self, runnable: Runnable) -> Try:
        """Claimed once more than its tries allow: the tries it lacks a record of died with their worker."""
        tries = runnable.max_tries
        if runnable.policy is None:  # arq's own words and result for a plain arq function
            exc = JobExecutionFailed(f"max {tries} retries exceeded")
            error = JobError(type(exc).__name__, str(exc))
            return self.done(Failed(error, self.failure_payload(error, exc), None, None))
        message = f"its worker stopped while running it; all {tries} tries used"
        error = JobError.of_kind(ErrorKind.worker_lost, message)
        letter = self.dead_letter(error, "max tries exceeded: its worker stopped while running it", tries)
        return self.done(Failed(error, self.failure_payload(error), None, letter))

    async def execute(self, runnable: Runnable) -> Try:
        worker, claim = self.worker, self.claim
        ctx = self.ctx = {
            **worker.ctx,
            "job_id": claim.job_id,
            "function": self.function,
            "job_try": claim.job_try,
            "enqueue_time": ms_to_datetime(self.enqueue_time_ms),
            "score": claim.score,
        }
        started = time.perf_counter()

        async def steps() -> Any:
            """Everything the try does runs in its task, so whatever fails in any step fails the try."""
            traceparent = self.carried.traceparent if self.carried else None
            with tracing.job_span(self.function, claim.job_id, claim.job_try, traceparent):
                if worker.on_job_start:
                    await worker.on_job_start(ctx)
                worker.log_started(claim, self.function, self.start_ms, self.enqueue_time_ms)
                if runnable.platform_cron:
                    await cron_runs.record_start(worker.pool, runnable.name, claim.job_id)
                return await _validated_call(runnable, ctx, self.args, self.kwargs)

        coroutine: Coroutine[Any, Any, Any] = _contained(steps)
        task = worker.job_tasks[claim.job_id] = asyncio.ensure_future(coroutine)
        try:
            value = await asyncio.wait_for(task, runnable.timeout_s)
        except (Exception, asyncio.CancelledError) as exc:
            self.duration_s = time.perf_counter() - started
            return self.done(self.on_error(runnable, exc))
        finally:
            if worker.job_tasks.get(claim.job_id) is task:
                del worker.job_tasks[claim.job_id]
                worker.aborting_tasks.discard(claim.job_id)
        self.duration_s = time.perf_counter() - started
        return self.done(self.on_value(runnable, value))

    def on_value(self, runnable: Runnable, value: Any) -> Outcome:
        if runnable.spec is None:  # a plain arq function: stored as arq stores it
            payload = wire.encode_result(self.header(), True, value, self.worker.job_serializer)
            return Succeeded(payload if self.keeps_result() else None)
        try:
            encoded = encode_exact(value, runnable.spec.returns)
        except Unencodable as exc:
            error = JobError.of_kind(ErrorKind.unencodable_result, f"the result cannot be stored as JSON: {exc}")
            return self.failed(runnable, error, retryable=True)
        limit = self.worker.platform_settings.max_result_bytes
        if len(encoded) > limit:
            message = f"the result is {len(encoded)} bytes, over MAX_RESULT_BYTES ({limit}); it was not stored"
            return self.failed(runnable, JobError.of_kind(ErrorKind.result_too_large, message), retryable=True)
        self.result_json = encoded
        payload = wire.encode_result(self.header(), True, encoded, self.worker.job_serializer)
        return Succeeded(payload if self.keeps_result() else None)

    def on_error(self, runnable: Runnable, exc: BaseException) -> Outcome:
        worker, job_id = self.worker, self.claim.job_id
        if isinstance(exc, asyncio.CancelledError):
            if job_id in worker.aborting_tasks:
                worker.aborting_tasks.discard(job_id)
                error = JobError.of_kind(ErrorKind.aborted, "aborted while it ran")
                return Aborted(self.failure_payload(error, exc), before_start=False)
            if worker.lost_claims.get(job_id) == self.claim.token:
                return Lost()
            return Requeued()  # the worker is stopping: the job goes back, its try given back
        if isinstance(exc, Retry | RetryJob) and worker.retry_jobs:
            delay_s = ((exc.defer_score or 0) / 1000) if isinstance(exc, Retry) else 0.0
            error = JobError("Retry", "the job asked to be retried")
            if runnable.policy is None:
                return Retrying(delay_s, None, error)
            if self.claim.job_try >= runnable.max_tries:
                message = f"the job asked to be retried, but its {runnable.max_tries} tries are used"
                return self.failed(runnable, JobError("Retry", message), retryable=False)
            entry = attempts.attempt(self.claim.job_try, error, self.duration_s, delay_s)
            return Retrying(delay_s, entry, error)
        error = _error_of(exc, runnable.timeout_s)
        if runnable.policy is None:  # a plain arq function keeps arq's semantics
            original = exc.original if isinstance(exc, JobRaisedBaseException) else exc
            if isinstance(original, asyncio.CancelledError) and worker.retry_jobs:
                return Retrying(0, None, JobError("CancelledError", "cancelled, will be run again"))
            return Failed(error, self.failure_payload(error, original), None, None)
        retryable = runnable.policy.should_retry(exc) and not isinstance(exc, InvalidArguments)
        return self.failed(runnable, error, retryable=retryable)

    def failed(self, runnable: Runnable, error: JobError, *, retryable: bool) -> Outcome:
        """A failed try of a platform job: retried by its policy while tries remain, else a dead letter."""
        policy, job_try = runnable.policy, self.claim.job_try
        if policy is not None and retryable and job_try < runnable.max_tries:
            delay_s = policy.delay_for(job_try)
            return Retrying(delay_s, attempts.attempt(job_try, error, self.duration_s, delay_s), error)
        entry = attempts.attempt(job_try, error, self.duration_s, None)
        reason = "fatal error" if not retryable else f"failed {job_try} of {runnable.max_tries} tries"
        if error.kind not in (ErrorKind.exception, ErrorKind.timeout):
            reason = f"{error.kind.replace('_', ' ')}: {reason}"
        letter = self.dead_letter(error, reason, job_try) if policy is not None else None
        return Failed(error, self.failure_payload(error), entry, letter)


async def run_try(worker: PlatformWorker, claim: Claim) -> Try:
    """Run one claimed job to its outcome (nothing is written here)."""
    return await _Runner(worker, claim).run()
