"""The OpenAPI document tells the whole truth: every status an operation can answer (401, 403, 404, 409, 413,
415, 422, 429, 503, ...) with the one error model, the scope each operation needs, the two ways to present
a key, and, for `POST /v1/jobs`, each registered function's own kwargs schema.

Derived from the routes, the scope map (service/auth.py) and the registry when the document is first asked
for, so a new route is documented the way it is guarded without extra work.
"""

from __future__ import annotations

import copy
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute
from pydantic.json_schema import models_json_schema

from core.registry import Registry
from service.auth import PUBLIC, flat_routes, required_scope
from service.models import ErrorBody
from service.strict_json import codec_bounded, json_value_schema

REF = "#/components/schemas/{model}"
ERROR_REF = {"$ref": "#/components/schemas/ErrorBody"}
SECURITY_SCHEMES = {
    "bearer": {"type": "http", "scheme": "bearer", "description": "`Authorization: Bearer <key>`"},
    "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key", "description": "`X-API-Key: <key>`"},
}
_WHY = {
    "400": "The Host header is not one of ALLOWED_HOSTS",
    "401": "No API key, or an unknown one (`WWW-Authenticate: Bearer`)",
    "403": "The key lacks this operation's scope (or, with no keys configured, the client is not local)",
    "404": "Not found",
    "408": "The body did not arrive in time",
    "409": "Conflict with the job's current state",
    "413": "The body is over MAX_REQUEST_BYTES",
    "415": "The body is not `application/json`",
    "422": "Invalid input; `loc` names each field",
    "429": "Rate limit or open-wait limit reached; see `Retry-After`",
    "503": "Redis is unavailable (`redis_unavailable`) or this process has no free Redis connection "
    "(`pool_exhausted`); see `Retry-After`",
}
_RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait", "schema": {"type": "integer"}}}
_AUTHENTICATE = {"WWW-Authenticate": {"description": "`Bearer`", "schema": {"type": "string"}}}


def _error(code: str) -> dict[str, Any]:
    answer: dict[str, Any] = {"description": _WHY[code], "content": {"application/json": {"schema": ERROR_REF}}}
    if code in ("429", "503"):
        answer["headers"] = _RETRY_AFTER
    elif code == "401":
        answer["headers"] = _AUTHENTICATE
    return answer


def _codes(route: Any, method: str, operation: dict[str, Any]) -> list[str]:
    scope = required_scope(route, method)
    codes = ["400", "422"]
    if scope != PUBLIC:
        codes += ["401", "403", "429"]
    if "requestBody" in operation:
        codes += ["408", "413", "415"]
    if "{" in route.path:
        codes.append("404")
    if route.path != "/health":
        codes.append("503")
    return codes


def _function_variants(schema: dict[str, Any], registry: Registry) -> None:
    """`EnqueueRequest` becomes one variant per registered function, its kwargs that function's schema."""
    components = schema["components"]["schemas"]
    base = components.get("EnqueueRequest")
    specs = sorted(registry.jobs.values(), key=lambda spec: spec.name)
    if base is None or not specs:
        return
    _, defs = models_json_schema([(spec.arguments, "validation") for spec in specs], ref_template=REF)
    components.update({name: codec_bounded(model) for name, model in defs.get("$defs", {}).items()})
    components["JsonValue"] = json_value_schema()
    variants = []
    for spec in specs:
        variant = copy.deepcopy(base)
        variant["title"] = f"EnqueueRequest[{spec.name}]"
        variant["properties"]["function"] = {"type": "string", "const": spec.name, "description": spec.description}
        variant["properties"]["kwargs"] = {"$ref": REF.format(model=spec.arguments.__name__)}
        if any(field.is_required() for field in spec.arguments.model_fields.values()):
            variant["required"] = sorted({*variant.get("required", []), "kwargs"})
        components[f"EnqueueRequest_{spec.name}"] = variant
        variants.append({"$ref": REF.format(model=f"EnqueueRequest_{spec.name}")})
    components["EnqueueRequest"] = {
        "title": "EnqueueRequest",
        "description": base.get("description", ""),
        "anyOf": variants,  # `function` is a const in each, so at most one matches
    }


TYPED_ENQUEUE = "/v1/functions/{name}/jobs"


def _typed_bodies(schema: dict[str, Any], registry: Registry) -> None:
    """Each typed enqueue's body states the codec's bounds, as `POST /v1/jobs`'s kwargs do: the route holds
    bodies to this published schema (service/routes/typed.py), so the two agree."""
    components = schema["components"]["schemas"]
    for name in registry.jobs:
        operation = schema["paths"].get(TYPED_ENQUEUE.format(name=name), {}).get("post", {})
        ref = operation.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema", {})
        model = str(ref.get("$ref", "")).rpartition("/")[2]
        if model in components:
            components[model] = codec_bounded(components[model])


def _links(schema: dict[str, Any], registry: Registry) -> None:
    """OpenAPI links from each enqueue to the operations on the job it made: a client (and the fuzzer's
    stateful phase) follows the `job_id` of a 202 instead of guessing ids."""
    job_id = {"job_id": "$response.body#/job_id"}
    follow = {"operationId": "", "parameters": job_id}
    enqueues: dict[str, tuple[str, ...]] = {"/v1/jobs": ("get_job", "get_result", "abort_job")}
    enqueues |= {TYPED_ENQUEUE.format(name=name): (f"get_{name}_job", "abort_job") for name in registry.jobs}
    for path, operation_ids in enqueues.items():
        accepted = schema["paths"].get(path, {}).get("post", {}).get("responses", {}).get("202")
        if accepted is not None:
            accepted["links"] = {op: {**follow, "operationId": op} for op in operation_ids}


# `DELETE /v1/dead` needs `function` or `all=true`: two optional parameters cannot say so, one exploded
# object parameter (the same query string on the wire) can.
DEAD_SELECTOR = {
    "name": "selector",
    "in": "query",
    "required": True,
    "style": "form",
    "explode": True,
    "description": "`function=<name>` (every dead job of one function), or `all=true` (every dead job); "
    "with both, `function` narrows.",
    "schema": {
        "type": "object",
        "properties": {"function": {"type": "string", "minLength": 1}, "all": {"type": "boolean"}},
        "additionalProperties": False,
        "anyOf": [{"required": ["function"]}, {"required": ["all"], "properties": {"all": {"const": True}}}],
    },
}


def install_openapi(app: FastAPI, registry: Registry) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = get_openapi(
            title=app.title, version=app.version, summary=app.summary, description=app.description, routes=app.routes
        )
        components = schema.setdefault("components", {})
        schemas = components.setdefault("schemas", {})
        _, defs = models_json_schema([(ErrorBody, "serialization")], ref_template=REF)
        schemas.update(defs.get("$defs", {}))
        for unused in ("HTTPValidationError", "ValidationError"):
            schemas.pop(unused, None)
        components["securitySchemes"] = SECURITY_SCHEMES
        for route in flat_routes(app.routes):
            if not isinstance(route.original_route, APIRoute) or not route.include_in_schema:
                continue
            for method in route.methods or ():
                operation = schema["paths"].get(route.path_format, {}).get(method.lower())
                if operation is None:
                    continue
                scope = required_scope(route, method)
                if scope == PUBLIC:
                    operation["security"] = []
                else:
                    operation["security"] = [{"bearer": []}, {"apiKey": []}]
                    operation["x-required-scope"] = scope
                    operation["description"] = (
                        operation.get("description", "") + f"\n\nNeeds an API key with the `{scope}` scope."
                    ).strip()
                responses = operation.setdefault("responses", {})
                for code in _codes(route, method, operation):
                    responses[code] = {**_error(code), **responses.get(code, {})}  # a route's own words win
                for code, answer in responses.items():
                    schema_ref = answer.get("content", {}).get("application/json", {}).get("schema", {})
                    if code >= "400" and (not schema_ref or "HTTPValidationError" in str(schema_ref)):
                        answer["content"] = {"application/json": {"schema": ERROR_REF}}
        _function_variants(schema, registry)
        _typed_bodies(schema, registry)
        _links(schema, registry)
        delete_dead = schema["paths"].get("/v1/dead", {}).get("delete")
        if delete_dead is not None:
            delete_dead["parameters"] = [DEAD_SELECTOR]
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
