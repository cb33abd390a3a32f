"""Request correlation: every answer carries `X-Request-ID`; the id and the request's `traceparent` travel with
the job (raw arq still reads the payload), so every worker log line of the job carries `request_id`; with
OpenTelemetry the job's span is a child of the request's."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from arq.connections import ArqRedis
from arq.jobs import deserialize_job_raw
from asgi_lifespan import LifespanManager

from core import codec, keys
from service.app import create_app
from settings import Settings
from tests.conftest import TEST_JOB_MODULES, api_client, build_worker, make_settings
from tests.support import embed_app
from tests.support.processes import start_worker, stop_process
from tests.support.waiting import wait_for

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_SPAN = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT_SPAN}-01"
MADE_ID = re.compile(r"^[0-9a-f]{32}$")


async def payload(redis: ArqRedis, job_id: str) -> dict[str, Any]:
    raw = await redis.get(keys.job(job_id))
    assert raw is not None
    function, _args, kwargs, _try, _et = deserialize_job_raw(raw, deserializer=codec.loads)  # raw arq reads it
    assert isinstance(function, str) and isinstance(kwargs, dict)
    data: dict[str, Any] = codec.loads(raw)
    return data


async def test_every_answer_carries_a_request_id(client: httpx.AsyncClient) -> None:
    answers = [
        await client.get("/health"),
        await client.get("/v1/jobs/nope"),  # 404
        await client.post("/v1/jobs", json={"function": "echo"}),  # 422
        await client.get("/health", headers={"Host": "evil.example"}),  # 400 from the guard
        await client.get("/no/such/route"),
    ]
    ids = [answer.headers["x-request-id"] for answer in answers]
    assert all(MADE_ID.match(request_id) for request_id in ids) and len(set(ids)) == len(ids)


@pytest.mark.parametrize(
    ("given", "kept"),
    [("req-42:checkout/7", True), ("a" * 128, True), ("a" * 129, False), ("has space", False), ("<x>", False)],
)
async def test_a_sane_client_id_is_kept_and_any_other_replaced(
    client: httpx.AsyncClient, given: str, kept: bool
) -> None:
    answer = await client.get("/health", headers={"X-Request-ID": given})
    assert (answer.headers["x-request-id"] == given) is kept
    if not kept:
        assert MADE_ID.match(answer.headers["x-request-id"])


async def test_the_id_and_traceparent_are_stored_with_every_kind_of_enqueue(
    client: httpx.AsyncClient, redis: ArqRedis
) -> None:
    headers = {"X-Request-ID": "req-1", "traceparent": TRACEPARENT}
    single = await client.post("/v1/jobs", json={"function": "echo", "kwargs": {"value": 1}}, headers=headers)
    batch = await client.post(
        "/v1/jobs/batch", json={"jobs": [{"function": "echo", "kwargs": {"value": 2}}]}, headers=headers
    )
    typed = await client.post("/v1/functions/echo/jobs", json={"value": 3}, headers=headers)
    bare = await client.post("/v1/jobs", json={"function": "echo", "kwargs": {"value": 4}})
    job_ids = [single.json()["job_id"], batch.json()["accepted"][0]["job_id"], typed.json()["job_id"]]
    for job_id in job_ids:
        stored = await payload(redis, job_id)
        assert (stored["rid"], stored["tp"]) == ("req-1", TRACEPARENT)
    stored = await payload(redis, bare.json()["job_id"])
    assert stored["rid"] == bare.headers["x-request-id"] and "tp" not in stored


async def test_a_bad_traceparent_is_not_stored(client: httpx.AsyncClient, redis: ArqRedis) -> None:
    bad = f"00-{'0' * 32}-{PARENT_SPAN}-01"
    answer = await client.post(
        "/v1/jobs", json={"function": "echo", "kwargs": {"value": 1}}, headers={"traceparent": bad}
    )
    assert "tp" not in await payload(redis, answer.json()["job_id"])


@pytest.mark.parametrize("timing", ["now", "on_success", "after_response"])
async def test_jobs_dep_in_your_own_app_carries_the_request(settings: Settings, redis: ArqRedis, timing: str) -> None:
    app = embed_app.build(settings)
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://platform.test") as own:
            headers = {"X-Request-ID": f"own-{timing}", "traceparent": TRACEPARENT}
            answer = await own.post("/echo", params={"timing": timing}, headers=headers)
    assert answer.status_code == 200, answer.text
    stored = await payload(redis, answer.json()["job_id"])
    assert (stored["rid"], stored["tp"]) == (f"own-{timing}", TRACEPARENT)


async def test_every_worker_log_line_of_the_job_carries_its_request_id(
    client: httpx.AsyncClient, redis: ArqRedis, settings: Settings, tmp_path: Path
) -> None:
    log_path = tmp_path / "worker.log"
    worker = start_worker(settings.redis_url, log_path, LOG_LEVEL="INFO")
    try:
        ok = await client.post(
            "/v1/jobs", json={"function": "echo", "kwargs": {"value": 1}}, headers={"X-Request-ID": "req-ok"}
        )
        bad = await client.post(
            "/v1/jobs",
            json={"function": "fail_always", "kwargs": {"message": "no"}},
            headers={"X-Request-ID": "req-bad"},
        )
        for answer in (ok, bad):
            job_id = answer.json()["job_id"]
            result = await client.get(f"/v1/jobs/{job_id}/result", params={"wait": 20})
            assert result.status_code == 200, result.text

        def lines_of(job_id: str) -> list[dict[str, Any]]:
            lines = [json.loads(line) for line in log_path.read_text().splitlines() if line.startswith("{")]
            return [line for line in lines if line.get("job_id") == job_id]

        async def ended() -> list[dict[str, Any]]:
            return lines_of(bad.json()["job_id"])

        await wait_for(ended, lambda lines: any(line["event"] == "job.dead" for line in lines))
    finally:
        stop_process(worker)
    expected = {"req-ok": {"job.started", "job.succeeded"}, "req-bad": {"job.started", "job.failed", "job.dead"}}
    for answer in (ok, bad):
        request_id, lines = answer.headers["x-request-id"], lines_of(answer.json()["job_id"])
        assert {line["event"] for line in lines} == expected[request_id]
        for line in lines:
            assert (
                line["request_id"] == request_id and line["try_"] == 1 and line["function"] in ("echo", "fail_always")
            )


@pytest.fixture(scope="module")
def spans() -> Iterator[Any]:
    """An OpenTelemetry SDK provider for this process, its finished spans kept in memory."""
    sdk = pytest.importorskip("opentelemetry.sdk.trace")
    from opentelemetry import trace
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = sdk.TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)  # once per process: OpenTelemetry refuses a second
    yield exporter
    provider.shutdown()  # later tests keep the provider, but nothing is kept in memory any more


class Collecting(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.events: list[dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        if isinstance(record.msg, dict):
            self.events.append(record.msg)


async def test_with_opentelemetry_the_job_span_is_a_child_of_the_request_span_and_fan_out_carries_both(
    client: httpx.AsyncClient, redis: ArqRedis, settings: Settings, spans: Any
) -> None:
    order = {"order_id": 9, "email": "ada@example.com", "items": [{"sku": "tea", "quantity": 1, "unit_price": 2}]}
    spans.clear()
    answer = await client.post(
        "/v1/jobs", json={"function": "process_order", "kwargs": order}, headers={"traceparent": TRACEPARENT}
    )
    job_id, request_id = answer.json()["job_id"], answer.headers["x-request-id"]
    collected = Collecting()
    root = logging.getLogger()
    root.addHandler(collected)
    worker = build_worker(settings.model_copy(update={"log_level": "INFO"}), burst=True, poll_delay=0)
    try:
        await worker.async_run()
    finally:
        await worker.close()
        root.removeHandler(collected)
    finished = spans.get_finished_spans()
    by_name = {span.name: span for span in finished}
    # FastAPI makes the request's span once a provider is configured (else the job's parent is the header's)
    (request,) = [span for span in finished if span.parent and f"{span.parent.span_id:016x}" == PARENT_SPAN]
    assert f"{request.context.trace_id:032x}" == TRACE_ID and not request.name.startswith("job ")
    parent = by_name["job process_order"]
    by_id = {span.context.span_id: span for span in finished}
    above, ancestors = by_id.get(parent.parent.span_id), []
    while above is not None:  # the request's span, or its route operation's span under it
        ancestors.append(above)
        above = by_id.get(above.parent.span_id) if above.parent else None
    assert request in ancestors
    assert parent.attributes["job.id"] == job_id
    child = by_name["job send_order_receipt"]  # fanned out by the job: a child of the job's span
    assert child.context.trace_id == parent.context.trace_id and child.parent.span_id == parent.context.span_id
    receipt = [event for event in collected.events if event.get("job_id") == "platform:order-9:receipt"]
    assert {event["event"] for event in receipt} >= {"job.started", "job.succeeded"}
    assert all(event["request_id"] == request_id for event in receipt), "the child carries the request's id"


async def test_with_opentelemetry_a_failing_job_keeps_its_own_error_and_traceback(
    redis_server: Any, redis: ArqRedis, spans: Any
) -> None:
    """The span records the failure without `str()` on the job's exception (a job's may fail it) and adds no
    frames of its own to the job's traceback."""
    settings = make_settings(redis_server.url, job_modules=[*TEST_JOB_MODULES, "tests.support.outcome_jobs"])
    spans.clear()
    async with api_client(settings) as client:
        answer = await client.post(
            "/v1/jobs", json={"function": "raise_base_exception", "kwargs": {"what": "str_raises"}}
        )
        job_id = answer.json()["job_id"]
        worker = build_worker(settings, burst=True, poll_delay=0, max_burst_jobs=1)
        try:
            await worker.async_run()
        finally:
            await worker.close()
        attempts = (await client.get(f"/v1/jobs/{job_id}")).json()["attempts"]
    assert attempts[0]["error_type"] == "BadStr" and "opentelemetry" not in attempts[0]["traceback"]
    (span,) = [span for span in spans.get_finished_spans() if span.name == "job raise_base_exception"]
    assert span.status.status_code.name == "ERROR"
    (event,) = span.events
    assert event.attributes["exception.type"] == "BadStr" and "str()" in event.attributes["exception.message"]


async def test_an_unexpected_error_is_a_500_with_the_request_id_in_its_header_and_log_line(
    settings: Settings, redis: ArqRedis
) -> None:
    app = create_app(settings)

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("a bug")

    collected = Collecting()
    logging.getLogger().addHandler(collected)
    try:
        async with LifespanManager(app) as manager:
            transport = httpx.ASGITransport(app=manager.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://platform.test") as client:
                answer = await client.get("/boom", headers={"X-Request-ID": "req-boom"})
    finally:
        logging.getLogger().removeHandler(collected)
    assert answer.status_code == 500 and answer.json()["detail"][0]["type"] == "internal_error"
    assert answer.headers["x-request-id"] == "req-boom" and answer.headers["x-content-type-options"] == "nosniff"
    (logged,) = [event for event in collected.events if event["event"] == "api.unexpected_error"]
    assert logged["request_id"] == "req-boom" and logged["exc_info"] is True  # the formatter renders its traceback
