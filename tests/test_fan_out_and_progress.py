"""A job that fans out into child jobs, and a long job whose progress shows while it runs."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx

from tests.support.waiting import wait_for

ORDER = {
    "order_id": 42,
    "email": "grace@example.com",
    "items": [
        {"sku": "BOOK", "quantity": 2, "unit_price": 9.5},
        {"sku": "PEN", "quantity": 3, "unit_price": 1.0},
        {"sku": "BOOK", "quantity": 1, "unit_price": 9.5},
    ],
}
ORDER_TOTAL = 31.5


async def finished_view(client: httpx.AsyncClient, job_id: str) -> dict[str, Any]:
    response = await client.get(f"/v1/jobs/{job_id}")
    assert response.status_code == 200, response.text
    return response.json()


async def test_process_order_fans_out_receipt_inventory_and_analytics(
    client: httpx.AsyncClient, run_burst_worker
) -> None:
    response = await client.post("/v1/jobs", json={"function": "process_order", "kwargs": ORDER})
    assert response.status_code == 202
    order_job_id = response.json()["job_id"]

    worker = await run_burst_worker()

    assert worker.jobs_complete == 4
    assert worker.jobs_failed == 0
    order = await finished_view(client, order_job_id)
    assert order["status"] == "complete"
    processed = order["result"]
    assert processed["order_id"] == 42
    assert processed["total"] == ORDER_TOTAL
    child_ids = {processed["receipt_job_id"], processed["inventory_job_id"], processed["analytics_job_id"]}
    assert len(child_ids) == 3 and order_job_id not in child_ids
    # Ids derived from the order, in the platform's namespace (no client can take one first).
    assert processed["receipt_job_id"] == "platform:order-42:receipt"
    assert processed["inventory_job_id"] == "platform:order-42:inventory"
    assert processed["analytics_job_id"] == "platform:order-42:analytics"

    receipt = await finished_view(client, processed["receipt_job_id"])
    assert receipt["function"] == "send_order_receipt"
    assert receipt["status"] == "complete"
    assert receipt["result"]["to"] == "grace@example.com"
    assert "#42" in receipt["result"]["subject"]
    assert "31.50" in receipt["result"]["subject"]

    inventory = await finished_view(client, processed["inventory_job_id"])
    assert inventory["function"] == "update_inventory"
    assert inventory["status"] == "complete"
    assert inventory["result"] == {"BOOK": 3, "PEN": 3}

    analytics = await finished_view(client, processed["analytics_job_id"])
    assert analytics["function"] == "record_analytics_event"
    assert analytics["status"] == "complete"
    assert analytics["result"] == {"event": "order_placed", "properties": {"order_id": 42, "total": ORDER_TOTAL}}


async def test_report_progress_is_visible_while_it_runs(client: httpx.AsyncClient, running_worker) -> None:
    response = await client.post(
        "/v1/jobs", json={"function": "generate_report", "kwargs": {"report_id": "q3", "rows": 500}}
    )
    assert response.status_code == 202
    job_id = response.json()["job_id"]

    def midway(view: dict[str, Any]) -> bool:
        progress = view["progress"]
        return view["status"] == "in_progress" and progress is not None and 0 < progress["percent"] < 100

    running = await wait_for(lambda: finished_view(client, job_id), midway, timeout=5)
    assert running["progress"]["total"] == 500
    assert 0 < running["progress"]["done"] < 500
    assert type(running["progress"]["done"]) is int and type(running["progress"]["total"]) is int  # ints stay ints
    updated_at = datetime.fromisoformat(running["progress"]["updated_at"])
    assert abs((datetime.now(UTC) - updated_at).total_seconds()) < 5
    started_at = datetime.fromisoformat(running["started_at"])  # known while it runs, from its lease
    assert datetime.fromisoformat(running["enqueued_at"]) <= started_at <= updated_at
    assert running["tries"] == 1

    outcome = await client.get(f"/v1/jobs/{job_id}/result", params={"wait": 10})
    assert outcome.status_code == 200
    assert outcome.json()["status"] == "complete"
    report = outcome.json()["result"]
    assert report["report_id"] == "q3"
    assert report["rows"] == 500
    done = await finished_view(client, job_id)
    assert done["progress"]["percent"] == 100
    assert done["progress"]["done"] == 500
    assert done["started_at"] == running["started_at"]
    assert done["progress"]["message"] == "500 of 500 rows"
