"""`/v1/functions`: what can be enqueued, with each function's argument schema and options."""

from __future__ import annotations

from fastapi import APIRouter

from core.registry import JobSpec
from service.deps import RegistryDep, SettingsDep
from service.errors import ApiError, PlatformRoute
from service.models import FunctionOptionsView, FunctionView
from settings import Settings

router = APIRouter(prefix="/v1/functions", tags=["functions"], route_class=PlatformRoute)


def _view(spec: JobSpec, settings: Settings) -> FunctionView:
    options = spec.resolved(settings)
    return FunctionView(
        name=spec.name,
        description=spec.description,
        arguments_schema=spec.arguments.model_json_schema(),
        options=FunctionOptionsView(
            timeout_s=options.timeout_s, max_tries=options.max_tries, keep_result_s=options.keep_result_s
        ),
    )


@router.get("")
async def list_functions(registry: RegistryDep, settings: SettingsDep) -> list[FunctionView]:
    """Every registered job function, by name."""
    return [_view(spec, settings) for spec in sorted(registry.jobs.values(), key=lambda s: s.name)]


@router.get("/{name}", responses={404: {"description": "No function with this name"}})
async def get_function(name: str, registry: RegistryDep, settings: SettingsDep) -> FunctionView:
    spec = registry.jobs.get(name)
    if spec is None:
        raise ApiError(404, f"no job function named {name!r} is registered", loc=("path", "name"))
    return _view(spec, settings)
