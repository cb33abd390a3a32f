"""`/v1/functions/{name}/jobs`: one enqueue and one read endpoint per registered function, typed by its
signature, so the OpenAPI document (and a client generated from it) has a method per job with its own
arguments and its own result type.

The body is the function's argument model plus the enqueue options (`job_id`, `defer_by`, `defer_until`); a
function parameter with one of those names shadows that option here (it stays available on `POST /v1/jobs`).
Operation ids are `enqueue_<name>` and `get_<name>_job`.
"""

from __future__ import annotations

import inspect
from typing import Annotated, Any, get_type_hints

from fastapi import APIRouter, HTTPException, Query, Response
from pydantic import BaseModel, ValidationError, create_model
from pydantic.fields import FieldInfo

from core.enqueue import enqueue
from core.exact_json import Unencodable
from core.registry import JobSpec, Registry
from service.deps import PoolDep, SettingsDep
from service.errors import KwargsInvalid
from service.models import EnqueueRequest, JobAccepted, JobView
from service.routes.jobs import _accepted, _wait_until_finished

OPTIONS = ("job_id", "defer_by", "defer_until")
WAIT = Annotated[float, Query(ge=0, description="Seconds to wait for the job to finish (bounded).")]


def _camel(name: str) -> str:
    return "".join(part.title() for part in name.split("_"))


def request_model(spec: JobSpec) -> tuple[type[BaseModel], tuple[str, ...]]:
    """The body of `enqueue_<name>`: the argument model plus the options it does not shadow."""
    options = tuple(name for name in OPTIONS if name not in spec.arguments.model_fields)
    fields: dict[str, Any] = {}
    for name in options:
        info = EnqueueRequest.model_fields[name]
        fields[name] = (info.annotation, FieldInfo.merge_field_infos(info))
    model = create_model(f"{_camel(spec.name)}Request", __base__=spec.arguments, **fields)
    model.__doc__ = f"The arguments of `{spec.name}`, and when to run it."
    return model, options


def view_model(spec: JobSpec) -> type[BaseModel]:
    """The job view of `get_<name>_job`, its `result` typed by the function's return annotation."""
    returns = get_type_hints(spec.function, include_extras=True).get("return", Any)
    if returns is type(None):
        returns = Any
    return create_model(
        f"{_camel(spec.name)}JobView",
        __base__=JobView,
        result=(returns | None if returns is not Any else Any, None),
    )


def _options_of(spec: JobSpec, body: BaseModel, options: tuple[str, ...]) -> EnqueueRequest:
    """Check the options with the generic endpoint's own rules (reserved ids, one deferral, bounds)."""
    try:
        return EnqueueRequest(function=spec.name, **{name: getattr(body, name) for name in options})
    except ValidationError as exc:
        raise KwargsInvalid.of(exc, ("body",)) from None


def _add_function(router: APIRouter, spec: JobSpec) -> None:
    body_model, options = request_model(spec)
    arguments = [name for name in spec.arguments.model_fields]
    path = f"/{spec.name}/jobs"

    async def enqueue_typed(body: Any, pool: Any, settings: Any, response: Response) -> JobAccepted:
        request = _options_of(spec, body, options)
        try:
            accepted = await enqueue(
                pool,
                spec,
                {name: getattr(body, name) for name in arguments},
                job_id=request.job_id,
                defer_by=request.defer_by,
                defer_until=request.defer_until,
            )
        except (ValidationError, Unencodable) as exc:
            raise KwargsInvalid.of(exc, ("body",)) from None
        response.headers["Location"] = f"/v1/functions/{spec.name}/jobs/{accepted.job_id}"
        return _accepted(spec.name, accepted)

    enqueue_typed.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [
            inspect.Parameter("body", inspect.Parameter.KEYWORD_ONLY, annotation=body_model),
            inspect.Parameter("pool", inspect.Parameter.KEYWORD_ONLY, annotation=PoolDep),
            inspect.Parameter("settings", inspect.Parameter.KEYWORD_ONLY, annotation=SettingsDep),
            inspect.Parameter("response", inspect.Parameter.KEYWORD_ONLY, annotation=Response),
        ],
        return_annotation=JobAccepted,
    )
    router.add_api_route(
        path,
        enqueue_typed,
        methods=["POST"],
        status_code=202,
        response_model=JobAccepted,
        name=f"enqueue_{spec.name}",
        operation_id=f"enqueue_{spec.name}",
        summary=f"Enqueue {spec.name}",
        description=(spec.description or spec.name)
        + "\n\nThe body is the function's own arguments, validated against its signature, plus the options.",
        responses={409: {"description": "A job with this job_id exists"}, 503: {"description": "Redis unavailable"}},
    )

    async def get_typed(job_id: str, pool: Any, settings: Any, wait: float = 0) -> JobView:
        record = await _wait_until_finished(pool, settings, job_id, min(wait, settings.result_wait_max_seconds))
        if record.function != spec.name:
            raise HTTPException(404, f"no job with id {job_id!r} of function {spec.name!r}")
        return JobView.of(record)

    get_typed.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [
            inspect.Parameter("job_id", inspect.Parameter.KEYWORD_ONLY, annotation=str),
            inspect.Parameter("pool", inspect.Parameter.KEYWORD_ONLY, annotation=PoolDep),
            inspect.Parameter("settings", inspect.Parameter.KEYWORD_ONLY, annotation=SettingsDep),
            inspect.Parameter("wait", inspect.Parameter.KEYWORD_ONLY, annotation=WAIT, default=0),
        ],
    )
    router.add_api_route(
        path + "/{job_id}",
        get_typed,
        methods=["GET"],
        response_model=view_model(spec),
        name=f"get_{spec.name}_job",
        operation_id=f"get_{spec.name}_job",
        summary=f"Get a {spec.name} job",
        description=f"A `{spec.name}` job: status, arguments, progress, and its result typed by the function's "
        "return annotation. `wait` waits up to N seconds for it to finish.",
        responses={404: {"description": "No job of this function with this id"}},
    )


def router(registry: Registry) -> APIRouter:
    """The typed endpoints of every registered function, and a 404 for names that are not registered."""
    typed = APIRouter(prefix="/v1/functions", tags=["typed"])
    for name in sorted(registry.jobs):
        _add_function(typed, registry.jobs[name])

    @typed.post("/{name}/jobs", include_in_schema=False, status_code=202)
    async def enqueue_unknown(name: str) -> None:
        raise HTTPException(404, f"no function named {name!r} is registered")

    @typed.get("/{name}/jobs/{job_id}", include_in_schema=False)
    async def get_unknown(name: str, job_id: str) -> None:
        raise HTTPException(404, f"no function named {name!r} is registered")

    return typed
