"""The handle a route enqueues jobs with: typed by the job's signature, with three timing modes.

`await jobs.enqueue(send_welcome_email, email=..., name=...)` is checked by mypy against the function (it is
a `Job[P, R]`), validated like `POST /v1/jobs`, and returns the job's id. When the job is written:

- `now`: when called.
- `on_success`: once the route returned without raising, before the response is sent (one atomic batch).
- `after_response`: held in Redis when called (a job deferred by `HOLD_GRACE_SECONDS`), released once the
  response was sent; a route that raised removes it; if the process dies in between, the hold runs out and the
  queue runs it anyway.
"""

from __future__ import annotations

from collections.abc import Callable, MutableMapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, ParamSpec, TypeVar
from uuid import uuid4

import structlog
from arq.connections import ArqRedis
from fastapi import HTTPException
from pydantic import ValidationError
from redis.exceptions import RedisError

from core import holding, keys
from core.chains import ChainInvalid, Then
from core.enqueue import (
    DuplicateJob,
    InvalidBatchItem,
    JobRequest,
    Prepared,
    ReservedJobId,
    enqueue,
    prepare_many,
    write_many,
)
from core.exact_json import Unencodable
from core.priority import Priority
from core.priority import check as check_priority
from core.registry import Job, JobSpec, Registry
from core.status import JobRecord, read_job
from service import exits
from service.errors import kwargs_errors
from service.held_releases import HeldReleases
from service.inflight import InFlight
from settings import Settings

P = ParamSpec("P")
R = TypeVar("R")
log = structlog.get_logger("api")


class InvalidJobArguments(HTTPException, ValueError):
    """The arguments a route gave a job failed its contract: a 422 like the API's (each error located under
    `job.<function>`) unless the route catches it; `errors` are pydantic's."""

    def __init__(self, function: str, error: ValidationError | Unencodable | ValueError) -> None:
        detail = kwargs_errors(error, ("job", function))
        super().__init__(422, detail)
        self.errors = detail


class JobAlreadyExists(DuplicateJob, HTTPException):
    """The route gave a `job_id` that already names a job: a 409 like the API's unless the route catches it
    (it is a `core.enqueue.DuplicateJob` too)."""

    def __init__(self, job_id: str) -> None:
        HTTPException.__init__(self, 409, f"a job with id {job_id!r} already exists")
        self.job_id = job_id


class Timing(StrEnum):
    """When a job a route enqueues is written to the queue."""

    now = "now"
    on_success = "on_success"
    after_response = "after_response"


@dataclass(frozen=True)
class EnqueueOptions:
    timing: Timing = Timing.now
    job_id: str | None = None
    defer_by: float | None = None
    defer_until: datetime | None = None
    priority: Priority | None = None
    then: tuple[Then, ...] = ()


NOW = EnqueueOptions()


@dataclass(slots=True)
class Jobs:
    """One request's handle on the queue (from the `JobsDep` dependency)."""

    pool: ArqRedis
    registry: Registry
    settings: Settings
    inflight: InFlight
    scope: MutableMapping[str, Any] | None = None  # the request's ASGI scope; None outside a request (`now` only)
    releases: HeldReleases | None = None  # the process's batched releases; None: each request settles its own
    _pending: list[Prepared] = field(default_factory=list)
    _held: list[holding.Held] = field(default_factory=list)
    _watching: bool = False
    _watching_response: bool = False
    _route_succeeded: bool = False

    async def enqueue(self, job: Job[P, R], /, *args: P.args, **kwargs: P.kwargs) -> str:
        """Write the job now; returns its id."""
        return await self._enqueue(NOW, job, args, kwargs)

    def options(
        self,
        timing: Timing | str = Timing.now,
        *,
        job_id: str | None = None,
        defer_by: float | None = None,
        defer_until: datetime | None = None,
        priority: Priority | None = None,
        then: Sequence[Then] = (),
    ) -> Enqueuer:
        """An enqueuer with these options: `await jobs.options("after_response", job_id="x").enqueue(...)`.
        `priority` ("high", "default", "low": core/priority.py) goes with the timings now and on_success;
        `then=[then(render, "data", fmt="pdf")]` chains jobs after it (core/chains.py)."""
        if defer_by is not None and defer_until is not None:
            raise ValueError("give defer_by or defer_until, not both")
        if defer_by is not None and defer_by < 0:
            raise ValueError("defer_by must be >= 0")
        if defer_until is not None and defer_until.tzinfo is None:
            defer_until = defer_until.replace(tzinfo=UTC)  # as the API reads it: no offset means UTC
        if priority is not None:
            check_priority(priority)
            if Timing(timing) is Timing.after_response:
                raise ValueError("priority goes with the timings now and on_success, not after_response")
        options = EnqueueOptions(Timing(timing), job_id, defer_by, defer_until, priority, tuple(then))
        return Enqueuer(self, options)

    @property
    def now(self) -> Enqueuer:
        return Enqueuer(self, EnqueueOptions(Timing.now))

    @property
    def on_success(self) -> Enqueuer:
        return Enqueuer(self, EnqueueOptions(Timing.on_success))

    @property
    def after_response(self) -> Enqueuer:
        return Enqueuer(self, EnqueueOptions(Timing.after_response))

    def _spec(
        self, job: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[JobSpec, dict[str, Any]]:
        spec = self.registry.spec_of(job)
        if args:
            names = list(spec.arguments.model_fields)
            if len(args) > len(names):
                raise TypeError(f"{spec.name} takes {len(names)} arguments, {len(args)} given")
            for name, value in zip(names, args, strict=False):
                if name in kwargs:
                    raise TypeError(f"{spec.name} got {name!r} twice")
                kwargs[name] = value
        return spec, kwargs

    async def _enqueue(
        self, options: EnqueueOptions, job: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> str:
        spec, kwargs = self._spec(job, args, kwargs)
        if options.job_id is not None and keys.is_platform_job_id(options.job_id):
            raise InvalidJobArguments(spec.name, ReservedJobId(options.job_id))
        if options.timing is not Timing.now:
            self._watch_request(options.timing)
        queue = self.settings.queue_name
        match options.timing:
            case Timing.now:
                self.inflight.begin()
                try:
                    accepted = await enqueue(
                        self.pool,
                        spec,
                        kwargs,
                        job_id=options.job_id,
                        defer_by=options.defer_by,
                        defer_until=options.defer_until,
                        queue_name=queue,
                        priority=options.priority,
                        then=options.then,
                    )
                except (ValidationError, Unencodable, ChainInvalid) as exc:
                    raise InvalidJobArguments(spec.name, exc) from None
                except DuplicateJob as exc:
                    raise JobAlreadyExists(exc.job_id) from None
                finally:
                    self.inflight.end()
                return accepted.job_id  # a unique job's duplicate: the id of the job that holds its key
            case Timing.on_success:
                job_id = options.job_id or uuid4().hex
                if any(pending.job_id == job_id for pending in self._pending):
                    given_twice = ValueError(f"job_id {job_id!r} is already enqueued on_success by this request")
                    raise InvalidJobArguments(spec.name, given_twice)
                request = JobRequest(
                    spec,
                    kwargs,
                    job_id,
                    options.defer_by,
                    options.defer_until,
                    priority=options.priority,
                    then=options.then,
                )
                try:  # validate and encode now, in the route, where the caller sees the error; written later
                    self._pending += prepare_many([request], self.pool.expires_extra_ms)
                except InvalidBatchItem as exc:
                    raise InvalidJobArguments(spec.name, exc.errors[0]) from None
                return job_id
            case Timing.after_response:
                try:
                    held = await self.inflight.run(
                        holding.hold(
                            self.pool,
                            spec,
                            kwargs,
                            grace_s=self.settings.hold_grace_seconds,
                            job_id=options.job_id,
                            defer_by=options.defer_by,
                            defer_until=options.defer_until,
                            queue_name=queue,
                            then=options.then,
                        )
                    )
                except (ValidationError, Unencodable, ChainInvalid) as exc:
                    raise InvalidJobArguments(spec.name, exc) from None
                except DuplicateJob as exc:
                    raise JobAlreadyExists(exc.job_id) from None
                if not held.existing:  # a unique job's duplicate is another request's job: left alone
                    self._held.append(held)
                return held.job_id

    async def get(self, job_id: str) -> JobRecord | None:
        """A job's status, result or error, and progress (what `GET /v1/jobs/{id}` shows); None if unknown."""
        return await read_job(self.pool, self.settings.queue_name, job_id)

    def _watch_request(self, timing: Timing) -> None:
        """Be called back when the route returned and, for `after_response`, when its response was sent. Only
        the `on_success` write awaits (shielded); the other callbacks only take note or hand work over."""
        if self.scope is None:
            raise RuntimeError("on_success and after_response need a request: use the handle from JobsDep")
        if timing is Timing.on_success and not self._watching:
            exits.on_exit(self.scope, exits.ROUTE_RETURNED, self._route_returned)
            self._watching = True
        if timing is Timing.after_response and not self._watching_response:
            exits.on_exit_sync(self.scope, exits.ROUTE_RETURNED, self._note_route_returned)
            if self.releases is not None:  # HOLD_RELEASE_WINDOW_MS > 0: handed to the process's batcher
                exits.on_exit_sync(self.scope, exits.RESPONSE_SENT, self._response_sent)
            else:  # released before the request ends: a read right after the answer finds the job queued
                exits.on_exit(self.scope, exits.RESPONSE_SENT, self._settle_now)
            self._watching_response = True

    def _note_route_returned(self, error: BaseException | None) -> None:
        if error is None:
            self._route_succeeded = True

    async def _route_returned(self, error: BaseException | None) -> None:
        """The route returned: write its `on_success` jobs, all in one atomic call; it raised: drop them."""
        pending, self._pending = self._pending, []
        if error is not None:
            return
        if pending:
            try:
                outcomes = await self.inflight.run(write_many(self.pool, pending, queue_name=self.settings.queue_name))
            except (RedisError, OSError) as exc:
                log.warning("jobs.write_failed", error=type(exc).__name__, message=str(exc))
                raise HTTPException(
                    503, "Redis is unavailable; the request's jobs were not written", {"Retry-After": "2"}
                ) from None
            for request, outcome in zip(pending, outcomes, strict=True):
                if isinstance(outcome, DuplicateJob):
                    log.info("jobs.duplicate", job_id=outcome.job_id, timing=Timing.on_success.value)
                elif outcome.existing:  # a unique job's key was held: the id given out names no job
                    log.info("jobs.existing", job_id=request.job_id, existing=outcome.job_id)
        self._route_succeeded = True

    def _response_sent(self, error: BaseException | None) -> None:
        """The request is over: release the `after_response` jobs if the route succeeded (even if sending the
        response then failed), remove them if it raised. Both are handed to the background, counted in flight:
        the jobs are held, so neither needs to finish before the request does. A failed release is only late:
        the hold runs out."""
        held, self._held = self._held, []
        if not held:
            return
        release = error is None or self._route_succeeded
        if release and self.releases is not None:
            self.releases.release(held)
        else:
            self.inflight.spawn(self._settle(held, release))

    async def _settle_now(self, error: BaseException | None) -> None:
        """`_response_sent` awaited (shielded), for a process that releases each request's jobs itself."""
        held, self._held = self._held, []
        if held:
            await self._settle(held, error is None or self._route_succeeded)

    async def _settle(self, held: list[holding.Held], release: bool) -> None:
        try:
            if release:
                await holding.release(self.pool, self.settings.queue_name, held)
            else:
                await holding.discard(self.pool, self.settings.queue_name, held)
        except (RedisError, OSError) as exc:
            log.warning("jobs.settle_failed", release=release, error=type(exc).__name__, message=str(exc))


@dataclass(frozen=True)
class Enqueuer:
    """`Jobs` with options fixed; `enqueue` is typed by the job's signature the same way."""

    jobs: Jobs
    options: EnqueueOptions

    async def enqueue(self, job: Job[P, R], /, *args: P.args, **kwargs: P.kwargs) -> str:
        return await self.jobs._enqueue(self.options, job, args, kwargs)
