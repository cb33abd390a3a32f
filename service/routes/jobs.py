"""`/v1/jobs`: enqueue, inspect, wait for and abort jobs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Annotated, Any

from arq.connections import ArqRedis
from fastapi import APIRouter, Query, Request, Response
from pydantic import ValidationError

from core import job_index
from core.abort import AbortOutcome, abort_job
from core.chains import ChainInvalid, Child, Then, arguments_without
from core.codec import KIND_TYPES, ErrorKind
from core.enqueue import DuplicateJob, Enqueued, InvalidBatchItem, JobRequest, enqueue, enqueue_many, prepare_many
from core.exact_json import Unencodable
from core.job_index import BadCursor, SearchStatus
from core.registry import JobSpec, Registry, UnknownFunction
from core.status import JobFailure, JobRecord, JobState, read_job
from service.auth import Scope, requires
from service.deps import EventHubDep, PoolDep, PrincipalDep, RegistryDep, SettingsDep, WaitSlotsDep
from service.errors import ApiError, KwargsInvalid, PlatformRoute, kwargs_errors, problem
from service.limits import WAIT_RETRY_AFTER_S, TooManyWaits
from service.models import (
    BatchAccepted,
    BatchEnqueueRequest,
    ChainLinkView,
    EnqueueRequest,
    JobAccepted,
    JobCounts,
    JobOutcome,
    JobPage,
    JobSummaryView,
    JobView,
    ThenRequest,
)
from service.strict_json import InputRejected, check_kwargs
from service.waiting import JOB_ID_LOC, record_or_404, unless_client_leaves, wait_until_finished
from settings import Settings

router = APIRouter(prefix="/v1/jobs", tags=["jobs"], route_class=PlatformRoute)

NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "No job with this id"}}
ABORT_WAIT_S = 2.0
CLIENT_LEFT = 499  # nginx's "client closed request", for the access log
MAX_PAGE = 200
CURSOR_PATTERN = r"^[0-9]{1,15}:.+$"


def _links(children: Sequence[Child]) -> list[ChainLinkView]:
    return [
        ChainLinkView(job_id=c.job_id, function=c.function, result_arg=c.result_arg, children=_links(c.children))
        for c in children
    ]


def _accepted(function: str, enqueued: Enqueued, existing: JobRecord | None = None) -> JobAccepted:
    """The accepted job; for a unique job's duplicate, the job that holds its key as it stands (`existing`)."""
    if enqueued.existing:
        return JobAccepted(
            job_id=enqueued.job_id,
            function=function,
            status=existing.status if existing else JobState.queued,
            enqueued_at=(existing and existing.enqueued_at) or enqueued.enqueued_at,
            scheduled_at=(existing and existing.scheduled_at) or enqueued.scheduled_at,
            existing=True,
            children=[
                ChainLinkView(job_id=c.job_id, function=c.function, result_arg=c.result_arg)
                for c in (existing.children if existing else [])
            ],
        )
    return JobAccepted(
        job_id=enqueued.job_id,
        function=function,
        status=JobState.deferred if enqueued.deferred else JobState.queued,
        enqueued_at=enqueued.enqueued_at,
        scheduled_at=enqueued.scheduled_at,
        children=_links(enqueued.children),
    )


async def accepted_answer(
    pool: ArqRedis, settings: Settings, function: str, enqueued: Enqueued, response: Response, location: str
) -> JobAccepted:
    """202 with the new job, or 200 with the existing one a unique job's duplicate found."""
    if enqueued.existing:
        response.status_code = 200
        return _accepted(function, enqueued, await read_job(pool, settings.queue_name, enqueued.job_id))
    response.headers["Location"] = location
    return _accepted(function, enqueued)


def chain_of(
    registry: Registry, entries: Sequence[ThenRequest], loc: tuple[str | int, ...], settings: Settings
) -> tuple[Then, ...]:
    """The `then` entries with their functions found and their kwargs held to the published schema (as a job's
    own kwargs are): a 422 naming every bad one at once. The rest is checked when the job is prepared."""
    problems: list[dict[str, Any]] = []

    def walk(items: Sequence[ThenRequest], here: tuple[str | int, ...]) -> tuple[Then, ...]:
        made = []
        for index, item in enumerate(items):
            try:
                spec = registry.get(item.function)
            except UnknownFunction as exc:
                problems.append(problem((*here, index, "function"), str(exc), "unknown_function"))
                continue
            if item.result_arg in spec.arguments.model_fields and item.result_arg not in item.kwargs:
                without = replace(spec, arguments=arguments_without(spec.arguments, item.result_arg))
                try:
                    _checked(without, item.kwargs, (*here, index, "kwargs"), settings)
                except KwargsInvalid as rejected:
                    problems.extend(rejected.detail)
                    continue
            made.append(Then(spec, item.result_arg, item.kwargs, walk(item.then, (*here, index, "then"))))
        return tuple(made)

    chain = walk(entries, (*loc, "then"))
    if problems:
        raise KwargsInvalid(problems)
    return chain


def _checked(spec: JobSpec, kwargs: dict[str, Any], loc: tuple[str | int, ...], settings: Settings) -> None:
    """The kwargs as the job will see them: exact, within MAX_KWARGS_BYTES and MAX_KWARGS_DEPTH."""
    try:
        check_kwargs(spec, kwargs, loc, settings.max_kwargs_bytes, settings.max_kwargs_depth)
    except ValidationError as exc:
        raise KwargsInvalid.of(exc, loc) from None
    except InputRejected as exc:
        raise KwargsInvalid([problem(exc.loc, exc.msg, exc.type_)]) from None


@router.post(
    "",
    status_code=202,
    responses={
        200: {"model": JobAccepted, "description": "A unique job's duplicate: the existing job (`existing: true`)"},
        409: {"description": "A job with this job_id exists"},
    },
)
@requires(Scope.enqueue)
async def enqueue_job(
    body: EnqueueRequest, pool: PoolDep, registry: RegistryDep, settings: SettingsDep, response: Response
) -> JobAccepted:
    """Validate the arguments against the function's signature (and each `then` entry against its own), then
    queue the job. A unique job whose key is held answers 200 with that job (`existing: true`)."""
    spec = registry.get(body.function)
    _checked(spec, body.kwargs, ("body", "kwargs"), settings)
    then = chain_of(registry, body.then, ("body",), settings) if body.then else ()
    try:
        accepted = await enqueue(
            pool,
            spec,
            body.kwargs,
            job_id=body.job_id,
            defer_by=body.defer_by,
            defer_until=body.defer_until,
            priority=body.priority,
            then=then,
        )
    except (ValidationError, Unencodable, ChainInvalid) as exc:
        raise KwargsInvalid.of(exc) from None
    return await accepted_answer(pool, settings, spec.name, accepted, response, f"/v1/jobs/{accepted.job_id}")


@router.post("/batch", status_code=202)
@requires(Scope.enqueue)
async def enqueue_batch(
    body: BatchEnqueueRequest, pool: PoolDep, registry: RegistryDep, settings: SettingsDep
) -> BatchAccepted:
    """Queue up to 1,000 jobs in one atomic round trip: all of them, or (422, 503) none. All are validated
    first, and every invalid job is reported at once (each error located by its index); an existing `job_id` is
    listed under `duplicates` and the rest are queued; so is a `job_id` given again in the batch (the first one
    given is queued). A unique job whose key is held (by an earlier job of the batch too) is listed with
    `existing: true`, as that job."""
    requests, invalid = [], []
    for index, item in enumerate(body.jobs):
        try:
            spec = registry.get(item.function)
        except UnknownFunction as exc:
            invalid.append({"loc": ["body", "jobs", index, "function"], "msg": str(exc), "type": "unknown_function"})
            continue
        try:
            _checked(spec, item.kwargs, ("body", "jobs", index, "kwargs"), settings)
            then = chain_of(registry, item.then, ("body", "jobs", index), settings) if item.then else ()
        except KwargsInvalid as rejected:
            invalid += rejected.detail  # reported with the rest; nothing of the batch is written
            continue
        request = JobRequest(
            spec, item.kwargs, item.job_id, item.defer_by, item.defer_until, priority=item.priority, then=then
        )
        requests.append((index, request))
    detail = list(invalid)
    try:
        if invalid:  # validate the rest too, so every bad item is reported at once, but write nothing
            prepare_many([request for _, request in requests], pool.expires_extra_ms)
            outcomes = []
        else:
            outcomes = await enqueue_many(pool, [request for _, request in requests])
    except InvalidBatchItem as exc:
        for position, error in exc.errors.items():
            detail += kwargs_errors(error, ("body", "jobs", requests[position][0], "kwargs"))
        outcomes = []
    if detail:
        raise KwargsInvalid(sorted(detail, key=lambda entry: entry["loc"][2]))
    accepted = BatchAccepted(accepted=[], duplicates=[])
    for (_, request), outcome in zip(requests, outcomes, strict=True):
        if isinstance(outcome, DuplicateJob):
            accepted.duplicates.append(outcome.job_id)
        elif outcome.existing:  # a unique job's duplicate: the job holding its key, as it stands
            record = await read_job(pool, settings.queue_name, outcome.job_id)
            accepted.accepted.append(_accepted(request.spec.name, outcome, record))
        else:
            accepted.accepted.append(_accepted(request.spec.name, outcome))
    return accepted


@router.get("")
async def search_jobs(
    pool: PoolDep,
    registry: RegistryDep,
    status: Annotated[SearchStatus | None, Query(description="Only jobs with this status.")] = None,
    function: Annotated[str | None, Query(max_length=200, description="Only jobs of this function.")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE, description="Jobs per page.")] = 50,
    cursor: Annotated[
        str | None,
        Query(max_length=600, pattern=CURSOR_PATTERN, description="`next_cursor` of the previous page."),
    ] = None,
) -> JobPage:
    """Jobs newest first (by their latest change; a deferred job by when it is due), with counts per status and
    per function. Kept by the platform's own bounded indexes: ended jobs stay listed while their records do."""
    try:
        page = await job_index.search(
            pool, status=status, function=function, limit=limit, cursor=cursor, known_functions=registry.jobs
        )
    except BadCursor as exc:
        raise ApiError(422, str(exc), loc=("query", "cursor"), type_="invalid_cursor") from None
    return JobPage(
        items=[JobSummaryView.of(item) for item in page.items],
        next_cursor=page.next_cursor,
        counts=JobCounts(status=page.status_counts, function=page.function_counts),
    )


@router.get("/{job_id}", responses=NOT_FOUND)
async def get_job(job_id: str, pool: PoolDep, settings: SettingsDep) -> JobView:
    """The job's status, arguments, timestamps, tries, progress and result or error."""
    return JobView.of(await record_or_404(pool, settings, job_id))


@router.get(
    "/{job_id}/result",
    response_model=JobOutcome,
    responses={**NOT_FOUND, 202: {"model": JobOutcome, "description": "Not finished yet"}},
)
async def get_result(
    job_id: str,
    pool: PoolDep,
    hub: EventHubDep,
    settings: SettingsDep,
    waits: WaitSlotsDep,
    principal: PrincipalDep,
    request: Request,
    response: Response,
    wait: Annotated[
        float, Query(ge=0, allow_inf_nan=False, description="Seconds to wait for the job to finish (bounded).")
    ] = 0,
) -> JobOutcome | Response:
    """The job's outcome: 200 once finished, 202 with the current status when not yet. With `wait`, the answer
    comes as soon as the job's terminal event arrives (pushed, not polled)."""
    wait_s = min(wait, settings.result_wait_max_seconds)
    if wait_s <= 0:
        record = await record_or_404(pool, settings, job_id)
    else:
        try:
            with waits.hold(principal.name):
                waiting = wait_until_finished(pool, hub, settings, job_id, wait_s)
                waited = await unless_client_leaves(request, waiting)
            if waited is None:
                return Response(status_code=CLIENT_LEFT)  # sent to nobody
            record = waited
        except TooManyWaits as exc:
            retry = {"Retry-After": str(WAIT_RETRY_AFTER_S)}
            raise ApiError(429, str(exc), type_="too_many_waits", headers=retry) from None
    if not record.status.finished:
        response.status_code = 202
    return JobOutcome.of(record)


# An action, not a deletion: the aborted job stays readable (its status is the point), so not `DELETE`.
@router.post(
    "/{job_id}/abort",
    operation_id="abort_job",
    responses={
        **NOT_FOUND,
        202: {"model": JobView, "description": "Abort requested; the running job is being cancelled"},
        409: {"description": "The job already finished"},
    },
)
async def abort(
    job_id: str, pool: PoolDep, hub: EventHubDep, registry: RegistryDep, settings: SettingsDep, response: Response
) -> JobView:
    """Abort a queued, deferred or running job; 409 when it already finished."""
    record = await record_or_404(pool, settings, job_id)
    if record.status.finished:
        msg = f"job {job_id!r} already finished with status {record.status.value}"
        raise ApiError(409, msg, loc=JOB_ID_LOC, type_="already_finished")
    if record.status is JobState.pending:
        msg = f"job {job_id!r} waits for its parent {record.parent!r}: abort the parent to end it"
        raise ApiError(409, msg, loc=JOB_ID_LOC, type_="chained_pending")
    spec = registry.jobs.get(record.function or "")
    keep_s = spec.resolved(settings).keep_result_s if spec else settings.keep_result_seconds
    outcome = await abort_job(pool, settings.queue_name, job_id, keep_s)
    if outcome is AbortOutcome.finished:
        raise ApiError(409, f"job {job_id!r} already finished", loc=JOB_ID_LOC, type_="already_finished")
    if outcome is AbortOutcome.not_found:
        raise ApiError(404, f"no job with id {job_id!r}", loc=JOB_ID_LOC)
    if outcome is AbortOutcome.aborted and keep_s == 0:
        # Nothing was kept to read back: answer with the job as it was, now aborted.
        failure = JobFailure(KIND_TYPES[ErrorKind.aborted], "aborted before it started", ErrorKind.aborted)
        return JobView.of(replace(record, status=JobState.aborted, finished_at=datetime.now(UTC), error=failure))
    record = await wait_until_finished(pool, hub, settings, job_id, ABORT_WAIT_S)
    if not record.status.finished:
        response.status_code = 202
    return JobView.of(record)
