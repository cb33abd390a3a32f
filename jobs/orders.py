"""Order processing: one job per order fans out its side effects as their own jobs, so a slow email
provider never holds up the inventory update and each effect retries on its own."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from pydantic import BaseModel, EmailStr, Field

from core import JobContext, RetryPolicy, enqueue_from_job, job
from jobs.emails import send_order_receipt

WORK_LATENCY_S = 0.02


class OrderItem(BaseModel):
    sku: Annotated[str, Field(min_length=1, max_length=64)]
    quantity: Annotated[int, Field(gt=0)]
    unit_price: Annotated[float, Field(ge=0)]


class OrderProcessed(BaseModel):
    order_id: int
    total: float
    receipt_job_id: str
    inventory_job_id: str
    analytics_job_id: str


@job(timeout=60)
async def process_order(
    ctx: JobContext,
    order_id: Annotated[int, Field(gt=0)],
    email: EmailStr,
    items: Annotated[list[OrderItem], Field(min_length=1)],
) -> OrderProcessed:
    """Validate and total an order, then fan out its receipt, inventory update and analytics event."""
    await asyncio.sleep(WORK_LATENCY_S)
    total = round(sum(item.quantity * item.unit_price for item in items), 2)
    # Ids derived from the order: if this job runs again, its children are not enqueued twice.
    child = f"order-{order_id}"
    receipt = await enqueue_from_job(
        ctx, send_order_receipt, _job_id=f"{child}:receipt", order_id=order_id, email=email, total=total
    )
    inventory = await enqueue_from_job(
        ctx, update_inventory, _job_id=f"{child}:inventory", order_id=order_id, items=items
    )
    analytics = await enqueue_from_job(
        ctx,
        record_analytics_event,
        _job_id=f"{child}:analytics",
        event="order_placed",
        properties={"order_id": order_id, "total": total},
    )
    return OrderProcessed(
        order_id=order_id,
        total=total,
        receipt_job_id=receipt,
        inventory_job_id=inventory,
        analytics_job_id=analytics,
    )


@job(timeout=30)
async def update_inventory(ctx: JobContext, order_id: int, items: list[OrderItem]) -> dict[str, int]:
    """Reserve stock for each item of an order; returns the units reserved per SKU."""
    await asyncio.sleep(WORK_LATENCY_S)
    reserved: dict[str, int] = {}
    for item in items:
        reserved[item.sku] = reserved.get(item.sku, 0) + item.quantity
    return reserved


@job(timeout=30)
async def record_analytics_event(ctx: JobContext, event: str, properties: dict[str, Any]) -> dict[str, Any]:
    """Send one analytics event to the (simulated) analytics pipeline."""
    await asyncio.sleep(WORK_LATENCY_S)
    return {"event": event, "properties": properties}


class CardCharged(BaseModel):
    order_id: int
    charged_on_try: int


class CardDeclined(Exception):
    """The (simulated) card was declined; a later try may succeed."""


@job(timeout=10, max_tries=3, retry=RetryPolicy(delay_s=1.0, factor=2.0, jitter=0))
async def charge_card(ctx: JobContext, order_id: int, declines: int = 0) -> CardCharged:
    """Charge an order's card (a demo of retries): declined on the first `declines` tries, then charged."""
    if ctx["job_try"] <= declines:
        raise CardDeclined(f"card declined for order {order_id}")
    return CardCharged(order_id=order_id, charged_on_try=ctx["job_try"])
