"""`/v1/functions/{name}/jobs`: a typed enqueue and read per function, readable operation ids, and a client
generated from the document by openapi-python-client with a typed method per job."""

from __future__ import annotations

import importlib
import json
import shutil
import subprocess
import sys
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager

from core.registry import Registry
from core.worker import PlatformWorker
from service.app import create_app
from settings import Settings

RunWorker = Callable[..., Awaitable[PlatformWorker]]
GENERIC_OPERATION_IDS = {
    ("post", "/v1/jobs"): "enqueue_job",
    ("post", "/v1/jobs/batch"): "enqueue_batch",
    ("get", "/v1/jobs/{job_id}"): "get_job",
    ("get", "/v1/jobs/{job_id}/result"): "get_result",
    ("post", "/v1/jobs/{job_id}/abort"): "abort_job",
    ("get", "/v1/functions"): "list_functions",
    ("get", "/v1/functions/{name}"): "get_function",
    ("get", "/v1/cron"): "list_cron",
    ("get", "/v1/queues"): "list_queues",
    ("get", "/v1/workers"): "list_workers",
    ("get", "/v1/dead"): "list_dead",
    ("get", "/v1/dead/{job_id}"): "get_dead",
    ("post", "/v1/dead/requeue"): "requeue_dead",
    ("delete", "/v1/dead/{job_id}"): "delete_dead",
    ("delete", "/v1/dead"): "delete_dead_many",
    ("get", "/health"): "health",
    ("get", "/ready"): "ready",
}
WELCOME = {"email": "ada@example.com", "name": "Ada"}


@pytest.fixture
def document(settings: Settings, registry: Registry) -> dict[str, Any]:
    return create_app(settings, registry).openapi()


def test_every_route_has_a_readable_operation_id(document: dict[str, Any], registry: Registry) -> None:
    found = {(method, path): op["operationId"] for path, ops in document["paths"].items() for method, op in ops.items()}
    for key, operation_id in GENERIC_OPERATION_IDS.items():
        assert found[key] == operation_id
    for name in registry.jobs:
        assert found[("post", f"/v1/functions/{name}/jobs")] == f"enqueue_{name}"
        assert found[("get", f"/v1/functions/{name}/jobs/{{job_id}}")] == f"get_{name}_job"
    assert len(set(found.values())) == len(found)


def test_typed_body_is_the_functions_arguments_plus_the_options(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    body = schemas["SendWelcomeEmailRequest"]
    assert set(body["properties"]) == {"email", "name", "job_id", "defer_by", "defer_until", "priority", "then"}
    assert body["required"] == ["email", "name"]
    assert body["properties"]["email"]["format"] == "email"
    assert body["additionalProperties"] is False
    result = schemas["SendWelcomeEmailJobView"]["properties"]["result"]
    assert {"$ref": "#/components/schemas/EmailSent"} in result["anyOf"]
    report = schemas["GenerateReportJobView"]["properties"]["result"]
    assert "$ref" in json.dumps(report)


async def test_typed_enqueue_then_typed_read(client: httpx.AsyncClient, run_burst_worker: RunWorker) -> None:
    response = await client.post("/v1/functions/send_welcome_email/jobs", json={**WELCOME, "job_id": "w-1"})
    assert response.status_code == 202
    assert response.headers["location"] == "/v1/functions/send_welcome_email/jobs/w-1"
    assert response.json()["status"] == "queued"
    await run_burst_worker()
    view = await client.get("/v1/functions/send_welcome_email/jobs/w-1")
    assert view.status_code == 200
    assert view.json()["status"] == "complete"
    assert view.json()["result"]["to"] == "ada@example.com"
    generic = await client.get("/v1/jobs/w-1")
    assert generic.json()["result"] == view.json()["result"]


async def test_typed_read_waits_for_the_result(client: httpx.AsyncClient, running_worker: PlatformWorker) -> None:
    response = await client.post("/v1/functions/sleep_for/jobs", json={"seconds": 0.2})
    job_id = response.json()["job_id"]
    view = await client.get(f"/v1/functions/sleep_for/jobs/{job_id}", params={"wait": 5})
    assert view.json()["status"] == "complete"
    assert view.json()["result"] == 0.2


async def test_typed_read_refuses_a_wait_that_is_no_finite_number_as_the_generic_wait_does(
    client: httpx.AsyncClient,
) -> None:
    job_id = (await client.post("/v1/functions/sleep_for/jobs", json={"seconds": 0.2})).json()["job_id"]
    for wait in ("inf", "1e400", "nan"):
        typed = await client.get(f"/v1/functions/sleep_for/jobs/{job_id}", params={"wait": wait})
        generic = await client.get(f"/v1/jobs/{job_id}/result", params={"wait": wait})
        assert typed.status_code == generic.status_code == 422
        assert typed.json()["detail"] == generic.json()["detail"]
        assert typed.json()["detail"][0]["type"] == "finite_number"


async def test_typed_enqueue_validates_each_field_and_option(client: httpx.AsyncClient) -> None:
    url = "/v1/functions/send_welcome_email/jobs"
    bad = await client.post(url, json={"email": "nope"})
    assert bad.status_code == 422
    assert {tuple(e["loc"]) for e in bad.json()["detail"]} == {("body", "email"), ("body", "name")}
    extra = await client.post(url, json={**WELCOME, "surprise": 1})
    assert extra.status_code == 422
    both = await client.post(url, json={**WELCOME, "defer_by": 5, "defer_until": "2030-01-01T00:00:00Z"})
    assert both.status_code == 422
    reserved = await client.post(url, json={**WELCOME, "job_id": "platform:mine"})
    assert reserved.status_code == 422
    assert reserved.json()["detail"][0]["loc"] == ["body", "job_id"]


async def test_typed_enqueue_defers_and_refuses_a_taken_id(client: httpx.AsyncClient) -> None:
    url = "/v1/functions/send_welcome_email/jobs"
    deferred = await client.post(url, json={**WELCOME, "job_id": "w-2", "defer_by": 60})
    assert deferred.status_code == 202
    assert deferred.json()["status"] == "deferred"
    again = await client.post(url, json={**WELCOME, "job_id": "w-2"})
    assert again.status_code == 409


async def test_unknown_function_and_a_job_of_another_function_are_404(client: httpx.AsyncClient) -> None:
    assert (await client.post("/v1/functions/nope/jobs", json={})).status_code == 404
    assert (await client.get("/v1/functions/nope/jobs/x")).status_code == 404
    await client.post("/v1/functions/echo/jobs", json={"value": 1, "job_id": "e-1"})
    assert (await client.get("/v1/functions/send_welcome_email/jobs/e-1")).status_code == 404
    assert (await client.get("/v1/functions/echo/jobs/e-1")).status_code == 200
    assert (await client.get("/v1/functions/echo/jobs/missing")).status_code == 404


@pytest.fixture
def generated_client(document: dict[str, Any], tmp_path: Path) -> Iterator[str]:
    """openapi-python-client run on the app's document, imported as `platform_client`."""
    generator = shutil.which("openapi-python-client", path=str(Path(sys.executable).parent))
    if generator is None:
        pytest.skip("openapi-python-client is not installed (pip install -e '.[dev]')")
    spec = tmp_path / "openapi.json"
    spec.write_text(json.dumps(document))
    env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin"}
    subprocess.run(
        [
            generator,
            "generate",
            "--path",
            str(spec),
            "--meta",
            "none",
            "--output-path",
            str(tmp_path / "platform_client"),
        ],
        check=True,
        capture_output=True,
        env=env,
    )
    sys.path.insert(0, str(tmp_path))
    yield "platform_client"
    sys.path.remove(str(tmp_path))
    for name in [m for m in sys.modules if m.startswith("platform_client")]:
        del sys.modules[name]


async def test_a_generated_client_has_a_typed_method_per_job(
    generated_client: str, settings: Settings, registry: Registry, redis: Any, run_burst_worker: RunWorker
) -> None:
    package = importlib.import_module(generated_client)
    enqueue_welcome = importlib.import_module(f"{generated_client}.api.typed.enqueue_send_welcome_email")
    get_welcome = importlib.import_module(f"{generated_client}.api.typed.get_send_welcome_email_job")
    models = importlib.import_module(f"{generated_client}.models")

    app = create_app(settings, registry)
    async with LifespanManager(app) as manager:
        api = package.Client(
            base_url="http://platform.test", httpx_args={"transport": httpx.ASGITransport(manager.app)}
        )
        accepted = await enqueue_welcome.asyncio(client=api, body=models.SendWelcomeEmailRequest(**WELCOME))
        assert isinstance(accepted, models.JobAccepted)
        await run_burst_worker()
        view = await get_welcome.asyncio(client=api, job_id=accepted.job_id)
        assert isinstance(view, models.SendWelcomeEmailJobView)
        assert isinstance(view.result, models.EmailSent)  # the result typed by the function's return annotation
        assert view.result.to == "ada@example.com"


def test_typed_bodies_publish_the_codecs_bounds(document: dict[str, Any]) -> None:
    """The body schema says what the enqueue accepts: integers within 64 bits, untyped values as JsonValue,
    the e-mail domains the validator refuses; so a client (or a fuzzer) trusting it is never surprised."""
    schemas = document["components"]["schemas"]
    receipt = schemas["SendOrderReceiptRequest"]["properties"]
    assert receipt["order_id"]["maximum"] == 2**64 - 1 and receipt["order_id"]["minimum"] == -(2**63)
    assert "pattern" in receipt["email"]
    assert schemas["EchoRequest"]["properties"]["value"]["$ref"] == "#/components/schemas/JsonValue"
    assert schemas["SendOrderReceiptRequest"]["not"] == {"required": ["defer_by", "defer_until"]}


async def test_typed_read_is_the_generic_view_with_a_typed_result(
    client: httpx.AsyncClient, run_burst_worker: RunWorker
) -> None:
    """Field names as published (an attempt's `try`, not the model's `try_`): found by fuzzing."""
    await client.post("/v1/functions/fail_always/jobs", json={"message": "no", "job_id": "f-1"})
    await run_burst_worker()
    typed = (await client.get("/v1/functions/fail_always/jobs/f-1")).json()
    generic = (await client.get("/v1/jobs/f-1")).json()
    assert typed["attempts"][0]["try"] == 1
    assert typed == generic


def test_reserved_ids_are_refused_by_the_published_schema_too(document: dict[str, Any]) -> None:
    """`platform:` ids are the platform's own (a 422): the document says so, for the generic and typed bodies."""
    import jsonschema_rs

    for name in ("EnqueueRequest_echo", "EchoRequest"):
        schema = {"$ref": f"#/components/schemas/{name}", "components": document["components"]}
        body = {"function": "echo", "kwargs": {"value": 1}} if name.startswith("Enqueue") else {"value": 1}
        validator = jsonschema_rs.validator_for(schema)
        assert validator.is_valid({**body, "job_id": "mine:1"})
        assert not validator.is_valid({**body, "job_id": "platform:cron:x:1"})
