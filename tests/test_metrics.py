"""`GET /metrics`: Prometheus text from the real app and a real Redis; the job families as the scripts leave them
in Redis (core/job_metrics.py), the queue and the live workers, and the API's own HTTP families."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import httpx
import pytest
from arq.connections import ArqRedis
from prometheus_client.parser import text_string_to_metric_families

from core import job_metrics
from core.embedded_redis import RedisProcess, free_port
from core.worker import PlatformWorker
from settings import Settings
from tests.conftest import api_client, make_settings
from tests.support.keys import ENQUEUE_KEY, ENQUEUER, READ_KEY, READER, bearer
from tests.support.waiting import wait_for

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(client: httpx.AsyncClient, **headers: str) -> Samples:
    response = await client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


async def test_job_families_render_what_the_scripts_counted(client: httpx.AsyncClient, redis: ArqRedis) -> None:
    await redis.hset(
        job_metrics.COUNTS_KEY,
        mapping={"enqueued|echo": 5, "retried|echo": 2, "finished|echo|complete": 3, "finished|echo|dead": 1},
    )
    first, fourth = job_metrics.bucket_index(0.004), job_metrics.bucket_index(0.04)
    await redis.hset(
        job_metrics.HIST_KEY,
        mapping={f"duration|echo|{first}": 2, f"duration|echo|{fourth}": 1, "duration|echo|sum": 0.05,
                 f"queue_wait|echo|{len(job_metrics.BUCKETS)}": 1, "queue_wait|echo|sum": 4000.0},
    )  # fmt: skip
    samples = await scrape(client)
    assert value(samples, "jobs_enqueued_total", function="echo") == 5
    assert value(samples, "jobs_retried_total", function="echo") == 2
    assert value(samples, "jobs_finished_total", function="echo", outcome="complete") == 3
    assert value(samples, "jobs_finished_total", function="echo", outcome="dead") == 1
    assert value(samples, "job_duration_seconds_bucket", function="echo", le="0.005") == 2
    assert value(samples, "job_duration_seconds_bucket", function="echo", le="0.025") == 2
    assert value(samples, "job_duration_seconds_bucket", function="echo", le="0.05") == 3  # cumulative
    assert value(samples, "job_duration_seconds_bucket", function="echo", le="+Inf") == 3
    assert value(samples, "job_duration_seconds_count", function="echo") == 3
    assert value(samples, "job_duration_seconds_sum", function="echo") == pytest.approx(0.05)
    assert value(samples, "job_queue_wait_seconds_bucket", function="echo", le="3600.0") == 0
    assert value(samples, "job_queue_wait_seconds_bucket", function="echo", le="+Inf") == 1
    assert value(samples, "redis_up") == 1


async def test_queue_states_without_a_worker(client: httpx.AsyncClient, redis: ArqRedis, settings: Settings) -> None:
    for defer_by in (0, 600, 600):
        body = {"function": "echo", "kwargs": {"value": 1}, "defer_by": defer_by}
        assert (await client.post("/v1/jobs", json=body)).status_code == 202
    samples = await scrape(client)
    queue = settings.queue_name
    assert value(samples, "queue_jobs", queue=queue, state="queued") == 1
    assert value(samples, "queue_jobs", queue=queue, state="deferred") == 2
    assert value(samples, "queue_jobs", queue=queue, state="in_progress") == 0
    assert value(samples, "workers_alive") == 0


async def test_a_running_job_and_its_worker(
    client: httpx.AsyncClient, settings: Settings, running_worker: PlatformWorker
) -> None:
    assert (await client.post("/v1/jobs", json={"function": "sleep_for", "kwargs": {"seconds": 3}})).status_code == 202
    queue = settings.queue_name

    def running(samples: Samples) -> bool:
        return value(samples, "queue_jobs", queue=queue, state="in_progress") == 1

    samples = await wait_for(lambda: scrape(client), running)  # the heartbeat carries the count: within 1 s here
    assert value(samples, "queue_jobs", queue=queue, state="queued") == 0
    assert value(samples, "workers_alive") == 1


async def test_http_families_use_route_templates_and_bounded_labels(client: httpx.AsyncClient) -> None:
    assert (await client.get("/v1/jobs/no-such-job")).status_code == 404
    assert (await client.get("/v1/jobs/another-one")).status_code == 404
    assert (await client.get("/no/such/path")).status_code == 404
    assert (await client.request("BREW", "/v1/jobs")).status_code in (404, 405)
    samples = await scrape(client)
    assert value(samples, "http_requests_total", method="GET", route="/v1/jobs/{job_id}", status="404") == 2
    assert value(samples, "http_requests_total", method="GET", route="unmatched", status="404") == 1
    assert any(name == "http_requests_total" and dict(labels)["method"] == "other" for name, labels in samples), (
        "an unknown method is labelled `other`"
    )
    assert value(samples, "http_request_duration_seconds_count", method="GET", route="/v1/jobs/{job_id}") == 2
    assert not any("no-such-job" in str(labels) for _, labels in samples), "a raw path leaked into a label"


async def test_each_app_counts_its_own_requests(settings: Settings, redis: ArqRedis) -> None:
    async with api_client(settings) as first:
        await first.get("/v1/jobs/x")
        async with api_client(settings) as second:
            samples = await scrape(second)
    assert value(samples, "http_requests_total", method="GET", route="/v1/jobs/{job_id}", status="404") is None


async def test_metrics_need_the_read_scope(redis_server: RedisProcess, redis: ArqRedis) -> None:
    async with api_client(make_settings(redis_server.url, api_keys=[ENQUEUER, READER])) as keyed:
        assert (await keyed.get("/metrics")).status_code == 401
        assert (await keyed.get("/metrics", headers=bearer(ENQUEUE_KEY))).status_code == 403
        assert (await keyed.get("/metrics", headers=bearer(READ_KEY))).status_code == 200
        operation = (await keyed.get("/openapi.json", headers=bearer(READ_KEY))).json()["paths"]["/metrics"]["get"]
    assert operation["operationId"] == "get_metrics" and operation["x-required-scope"] == "read"
    assert {"401", "403"} <= set(operation["responses"])


class Collecting(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.events: list[dict[str, object]] = []

    def emit(self, record: logging.LogRecord) -> None:
        if isinstance(record.msg, dict):
            self.events.append(record.msg)


async def test_with_redis_down_the_http_families_still_answer_and_the_warning_names_the_request() -> None:
    down = make_settings(f"redis://127.0.0.1:{free_port()}/0", rate_limit_per_minute=0)  # the limiter needs Redis
    collected = Collecting()
    logging.getLogger().addHandler(collected)
    try:
        async with api_client(down) as client:
            await client.get("/health")
            response = await client.get("/metrics", headers={"X-Request-ID": "scrape-1"})
            samples = await scrape(client)
    finally:
        logging.getLogger().removeHandler(collected)
    assert value(samples, "redis_up") == 0
    assert value(samples, "http_requests_total", method="GET", route="/health", status="200") == 1
    assert not any(name.startswith(("jobs_", "job_", "queue_jobs", "workers_alive")) for name, _ in samples)
    assert response.status_code == 200 and response.headers["x-request-id"] == "scrape-1"
    warnings = [event for event in collected.events if event["event"] == "metrics.redis_unavailable"]
    assert warnings and warnings[0]["request_id"] == "scrape-1", "the API's log lines carry the request's id"


async def test_end_to_end_a_job_run_by_a_worker_shows_in_metrics(
    client: httpx.AsyncClient, run_burst_worker: Callable[..., Awaitable[PlatformWorker]]
) -> None:
    accepted = await client.post("/v1/jobs", json={"function": "echo", "kwargs": {"value": 1}})
    assert accepted.status_code == 202
    await run_burst_worker()
    samples = await scrape(client)
    assert value(samples, "jobs_enqueued_total", function="echo") == 1
    assert value(samples, "jobs_finished_total", function="echo", outcome="complete") == 1
    assert value(samples, "job_duration_seconds_count", function="echo") == 1
    assert value(samples, "job_queue_wait_seconds_count", function="echo") == 1
