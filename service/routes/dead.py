"""`/v1/dead`: jobs that failed for good. List them, requeue them (one, many, or by function), delete them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query, Response

from core import dead_letters
from core.dead_letters import DeadLetter
from service.deps import PoolDep, SettingsDep
from service.errors import ApiError, PlatformRoute
from service.models import (
    AttemptView,
    DeadLetterPage,
    DeadLetterView,
    Deleted,
    ErrorView,
    RequeueByFunction,
    RequeueByIds,
    RequeueOutcome,
)

router = APIRouter(prefix="/v1/dead", tags=["dead letters"], route_class=PlatformRoute)
MAX_OFFSET = 10_000_000  # far past any real page; Redis refuses offsets near 2**63 (that was a 503)


def _view(letter: DeadLetter) -> DeadLetterView:
    return DeadLetterView(
        job_id=letter.job_id,
        function=letter.function,
        kwargs=letter.kwargs,
        tries=letter.tries,
        reason=letter.reason,
        error=ErrorView(
            kind=letter.kind, type=letter.error_type, message=letter.error_message, traceback=letter.traceback
        ),
        queue=letter.queue,
        failed_at=datetime.fromtimestamp(letter.failed_at, UTC),
        attempts=[AttemptView.of(entry) for entry in letter.attempts],
        requeueable=letter.requeueable,
    )


@router.get("")
async def list_dead(
    pool: PoolDep,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    function: Annotated[str | None, Query(min_length=1, description="Only this function's dead jobs.")] = None,
) -> DeadLetterPage:
    """Dead jobs, newest first, a page at a time."""
    total, letters = await dead_letters.page(pool, offset, limit, function)
    return DeadLetterPage(total=total, offset=offset, limit=limit, items=[_view(letter) for letter in letters])


@router.get("/{job_id}", responses={404: {"description": "No dead job with this id"}})
async def get_dead(job_id: str, pool: PoolDep) -> DeadLetterView:
    letter = await dead_letters.get(pool, job_id)
    if letter is None:
        raise ApiError(404, f"no dead job with id {job_id!r}", loc=("path", "job_id"))
    return _view(letter)


@router.post("/requeue", operation_id="requeue_dead")
async def requeue(body: RequeueByIds | RequeueByFunction, pool: PoolDep, settings: SettingsDep) -> RequeueOutcome:
    """Put dead jobs back on the queue under their own ids, with their original kwargs and fresh tries."""
    if isinstance(body, RequeueByIds):
        job_ids = body.job_ids
    else:
        job_ids = await dead_letters.ids_of_function(pool, body.function)
    outcome = RequeueOutcome(requeued=[], not_found=[], not_requeued={})
    for job_id in dict.fromkeys(job_ids):
        result = await dead_letters.requeue(pool, settings.queue_name, job_id)
        if result == "requeued":
            outcome.requeued.append(job_id)
        elif result == "not_found":
            outcome.not_found.append(job_id)
        else:
            outcome.not_requeued[job_id] = result
    return outcome


@router.delete("/{job_id}", status_code=204, responses={404: {"description": "No dead job with this id"}})
async def delete_dead(job_id: str, pool: PoolDep) -> Response:
    if not await dead_letters.delete(pool, [job_id]):
        raise ApiError(404, f"no dead job with id {job_id!r}", loc=("path", "job_id"))
    return Response(status_code=204)


@router.delete("", operation_id="delete_dead_many")
async def delete_many(
    pool: PoolDep,
    function: Annotated[str | None, Query(min_length=1)] = None,
    all: Annotated[bool, Query(description="Delete every dead job.")] = False,
) -> Deleted:
    """Delete every dead job of one function (`?function=`), or all of them (`?all=true`); with both, `function`
    narrows `all`. Neither is a 422: deleting everything takes an explicit `all=true`."""
    if function is None and not all:
        raise ApiError(422, "give ?function= or ?all=true", loc=("query",), type_="selector_missing")
    if function is not None:
        job_ids = await dead_letters.ids_of_function(pool, function)
    else:
        job_ids = await dead_letters.all_ids(pool)
    return Deleted(deleted=await dead_letters.delete(pool, job_ids))
