"""The shop end to end, with the platform's testing fixtures (`core.testing`): the real app, a throwaway
Redis, and an in-process worker that runs what the routes enqueued. No mocks."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest

from core.status import JobRecord
from core.testing import RunJobs, app_client
from examples.shop.app import create_app
from settings import Settings

ReadJob = Callable[[str], Awaitable[JobRecord | None]]
ORDER = {"email": "ada@example.com", "items": [{"sku": "tea", "quantity": 2, "unit_price": 3.5}]}


@pytest.fixture
def job_settings_overrides() -> dict[str, Any]:
    return {"job_modules": ["jobs"]}


@pytest.fixture
async def shop(job_settings: Settings, job_redis: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with app_client(create_app(job_settings)) as client:
        yield client


async def test_signup_sends_the_welcome_email_after_the_response(
    shop: httpx.AsyncClient, run_jobs: RunJobs, job_record: ReadJob
) -> None:
    response = await shop.post("/signup", json={"email": "ada@example.com", "name": "Ada"})
    assert response.status_code == 201
    job_id = response.json()["welcome_email_job"]
    run = await run_jobs()
    assert run.complete == 1
    record = await job_record(job_id)
    assert record is not None and record.status == "complete"
    assert record.result["subject"] == "Welcome, Ada!"


async def test_an_invalid_signup_schedules_nothing(shop: httpx.AsyncClient, run_jobs: RunJobs) -> None:
    assert (await shop.post("/signup", json={"email": "nope", "name": "Ada"})).status_code == 422
    assert (await run_jobs()).complete == 0


async def test_an_order_shows_its_jobs_until_they_ran(shop: httpx.AsyncClient, run_jobs: RunJobs) -> None:
    placed = await shop.post("/orders", json=ORDER)
    assert placed.status_code == 201
    order = placed.json()
    assert order["total"] == 7.0
    assert set(order["jobs"]) == {"receipt", "inventory", "analytics"}
    before = (await shop.get(f"/orders/{order['order_id']}")).json()
    assert set(before["job_statuses"].values()) == {"queued"}
    assert (await run_jobs()).complete == 3
    after = (await shop.get(f"/orders/{order['order_id']}")).json()
    assert set(after["job_statuses"].values()) == {"complete"}
    assert (await shop.get("/orders/99")).status_code == 404


async def test_the_platform_api_is_served_by_the_shop(shop: httpx.AsyncClient) -> None:
    functions = await shop.get("/v1/functions")
    assert "send_welcome_email" in {f["name"] for f in functions.json()}
    typed = await shop.post("/v1/functions/send_welcome_email/jobs", json={"email": "bo@example.com", "name": "Bo"})
    assert typed.status_code == 202


async def test_a_client_can_wait_for_the_welcome_email(shop: httpx.AsyncClient, job_worker: Any) -> None:
    signup = await shop.post("/signup", json={"email": "cy@example.com", "name": "Cy"})
    job_id = signup.json()["welcome_email_job"]
    result = await shop.get(f"/v1/jobs/{job_id}/result", params={"wait": 5})
    assert result.status_code == 200
    assert result.json()["result"]["to"] == "cy@example.com"
