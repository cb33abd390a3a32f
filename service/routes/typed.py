"""`/v1/functions/{name}/jobs`: one enqueue and one read endpoint per registered function, typed by its
signature, so the OpenAPI document (and a client generated from it) has a method per job with its own
arguments and its own result type.

The body is the function's argument model plus the enqueue options (`job_id`, `defer_by`, `defer_until`); a
function parameter with one of those names shadows that option here (it stays available on `POST /v1/jobs`).
Operation ids are `enqueue_<name>` and `get_<name>_job`. Two routes serve them all (found by name), so a
registry of any size adds two routes to match, not two per function.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Annotated, Any, get_type_hints

from arq.connections import ArqRedis
from fastapi import APIRouter, HTTPException, Query, Request, Response
from pydantic import BaseModel, ValidationError, create_model
from pydantic.fields import FieldInfo
from starlette.routing import Match
from starlette.types import Scope as AsgiScope

from core.chains import ChainInvalid
from core.enqueue import enqueue
from core.exact_json import Unencodable
from core.registry import JobSpec, Registry
from service.auth import Scope, requires
from service.deps import EventHubDep, PoolDep, PrincipalDep, SettingsDep, WaitSlotsDep
from service.errors import ApiError, KwargsInvalid, PlatformRoute, problem
from service.event_hub import EventHub
from service.limits import WAIT_RETRY_AFTER_S, TooManyWaits
from service.models import EnqueueRequest, JobAccepted, JobView
from service.routes.jobs import _checked, accepted_answer, chain_of
from service.strict_json import InputRejected, parse_body
from service.waiting import wait_until_finished
from settings import Settings

OPTIONS = ("job_id", "defer_by", "defer_until", "priority", "then")
WAIT = Annotated[
    float, Query(ge=0, allow_inf_nan=False, description="Seconds to wait for the job to finish (bounded).")
]


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
    if {"defer_by", "defer_until"} <= set(options):  # as POST /v1/jobs publishes it: one of them, not both
        model.model_config["json_schema_extra"] = {"not": {"required": ["defer_by", "defer_until"]}}
        model.model_rebuild(force=True)
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


@dataclass(frozen=True)
class TypedFunction:
    """One function's typed endpoints: its body and view models."""

    spec: JobSpec
    body: type[BaseModel]
    options: tuple[str, ...]
    arguments: tuple[str, ...]
    view: type[BaseModel]

    @classmethod
    def of(cls, spec: JobSpec) -> TypedFunction:
        body, options = request_model(spec)
        return cls(spec, body, options, tuple(spec.arguments.model_fields), view_model(spec))


async def _enqueue(
    function: TypedFunction, raw: bytes, pool: ArqRedis, registry: Registry, settings: Settings, response: Response
) -> JobAccepted:
    """The same strict path as `POST /v1/jobs`: the body read exactly (no float for a 70-bit integer), the
    options by the generic endpoint's own rules, the arguments held to the published schema and to the kwargs
    limits (`check_kwargs`) before pydantic sees them, so what this accepts is what the document says."""
    spec = function.spec
    try:
        body = parse_body(raw or b"{}", settings.max_kwargs_depth + 1)
    except InputRejected as exc:
        raise KwargsInvalid([problem(exc.loc, exc.msg, exc.type_)]) from None
    if not isinstance(body, dict):
        raise KwargsInvalid([problem(("body",), "must be a JSON object", "model_attributes_type")])
    given = {name: body.pop(name) for name in function.options if name in body}
    try:
        # As given (a string, not yet a datetime): the generic endpoint's rules (reserved ids, one deferral).
        options = EnqueueRequest(function=spec.name, **given)
    except ValidationError as exc:
        raise KwargsInvalid.of(exc, ("body",)) from None
    _checked(spec, body, ("body",), settings)
    then = chain_of(registry, options.then, ("body",), settings) if options.then else ()
    try:
        accepted = await enqueue(
            pool,
            spec,
            body,
            job_id=options.job_id,
            defer_by=options.defer_by,
            defer_until=options.defer_until,
            priority=options.priority,
            then=then,
        )
    except (ValidationError, Unencodable) as exc:
        raise KwargsInvalid.of(exc, ("body",)) from None
    except ChainInvalid as exc:
        raise KwargsInvalid.of(exc, ("body", "kwargs")) from None
    location = f"/v1/functions/{spec.name}/jobs/{accepted.job_id}"
    return await accepted_answer(pool, settings, spec.name, accepted, response, location)


async def _view(
    function: TypedFunction, job_id: str, pool: ArqRedis, hub: EventHub, settings: Settings, wait: float
) -> Response:
    record = await wait_until_finished(pool, hub, settings, job_id, min(wait, settings.result_wait_max_seconds))
    if record.function != function.spec.name:
        raise HTTPException(404, f"no job with id {job_id!r} of function {function.spec.name!r}")
    view = function.view.model_validate(JobView.of(record).model_dump(by_alias=True))
    return Response(view.model_dump_json(by_alias=True), media_type="application/json")


class SchemaOnlyRoute(PlatformRoute):
    """A per-function operation for the OpenAPI document; requests reach it through the dispatch routes.

    FastAPI tries routes one by one, at a cost per route, so two routes per function would slow every route
    after them; the two dispatch routes find the function by name instead, and these never match."""

    def matches(self, scope: AsgiScope) -> tuple[Match, AsgiScope]:
        return Match.NONE, {}


def _signature(*parameters: tuple[str, Any, Any]) -> inspect.Signature:
    return inspect.Signature(
        [
            inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=annotation, default=default)
            for name, annotation, default in parameters
        ]
    )


def _document(router: APIRouter, function: TypedFunction) -> None:
    """Add the function's two operations (`enqueue_<name>`, `get_<name>_job`) to the document."""
    spec, path, empty = function.spec, f"/{function.spec.name}/jobs", inspect.Parameter.empty

    @requires(Scope.enqueue)  # what the dispatch route needs, published as such
    async def enqueue_typed(**kwargs: Any) -> JobAccepted:
        raise NotImplementedError  # never matched: see SchemaOnlyRoute

    enqueue_typed.__signature__ = _signature(("body", function.body, empty))  # type: ignore[attr-defined]
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
        responses={
            200: {"model": JobAccepted, "description": "A unique job's duplicate: the existing job (`existing: true`)"},
            409: {"description": "A job with this job_id exists"},
            503: {"description": "Redis unavailable"},
        },
        route_class_override=SchemaOnlyRoute,
    )

    async def get_typed(**kwargs: Any) -> Any:
        raise NotImplementedError  # never matched: see SchemaOnlyRoute

    get_typed.__signature__ = _signature(("job_id", str, empty), ("wait", WAIT, 0))  # type: ignore[attr-defined]
    router.add_api_route(
        path + "/{job_id}",
        get_typed,
        methods=["GET"],
        response_model=function.view,
        name=f"get_{spec.name}_job",
        operation_id=f"get_{spec.name}_job",
        summary=f"Get a {spec.name} job",
        description=f"A `{spec.name}` job: status, arguments, progress, and its result typed by the function's "
        "return annotation. `wait` waits up to N seconds for it to finish.",
        responses={404: {"description": "No job of this function with this id"}},
        route_class_override=SchemaOnlyRoute,
    )


def routers(registry: Registry) -> tuple[APIRouter, APIRouter]:
    """The two routes that serve every function's typed endpoints, and the per-function operations that
    document them (include this one last)."""
    functions = {name: TypedFunction.of(spec) for name, spec in sorted(registry.jobs.items())}

    def find(name: str) -> TypedFunction:
        try:
            return functions[name]
        except KeyError:
            raise HTTPException(404, f"no function named {name!r} is registered") from None

    dispatch = APIRouter(prefix="/v1/functions", route_class=PlatformRoute, include_in_schema=False)

    @dispatch.post("/{name}/jobs", status_code=202)
    @requires(Scope.enqueue)
    async def enqueue_by_name(
        name: str, request: Request, pool: PoolDep, settings: SettingsDep, response: Response
    ) -> JobAccepted:
        return await _enqueue(find(name), await request.body(), pool, registry, settings, response)

    @dispatch.get("/{name}/jobs/{job_id}")
    async def get_by_name(
        name: str,
        job_id: str,
        pool: PoolDep,
        hub: EventHubDep,
        settings: SettingsDep,
        waits: WaitSlotsDep,
        principal: PrincipalDep,
        wait: WAIT = 0,
    ) -> Response:
        function = find(name)
        if wait <= 0:
            return await _view(function, job_id, pool, hub, settings, 0)
        try:
            with waits.hold(principal.name):
                return await _view(function, job_id, pool, hub, settings, wait)
        except TooManyWaits as exc:
            retry = {"Retry-After": str(WAIT_RETRY_AFTER_S)}
            raise ApiError(429, str(exc), type_="too_many_waits", headers=retry) from None

    document = APIRouter(prefix="/v1/functions", tags=["typed"], route_class=PlatformRoute)
    for function in functions.values():
        _document(document, function)
    return dispatch, document
