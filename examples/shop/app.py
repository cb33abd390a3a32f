"""The shop's own routes, with the platform mounted: signup schedules the welcome email after the response,
an order schedules its receipt, inventory update and analytics event, and an order shows its jobs' statuses.

The jobs are the platform's own (`jobs.emails`, `jobs.orders`), so the default `JOB_MODULES=jobs` is enough.
Users and orders live in memory (a stand-in for your database): what matters here is the jobs.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Annotated, Any, cast

from fastapi import Depends, FastAPI, HTTPException, Request
from pydantic import BaseModel, EmailStr, Field

from core.registry import Registry
from core.status import JobState
from jobs.emails import send_order_receipt, send_welcome_email
from jobs.orders import OrderItem, record_analytics_event, update_inventory
from service import JobsDep, Platform
from settings import Settings


@dataclass
class Store:
    """The shop's database (in memory)."""

    users: dict[int, dict[str, Any]] = field(default_factory=dict)
    orders: dict[int, dict[str, Any]] = field(default_factory=dict)

    def next_id(self, table: dict[int, Any]) -> int:
        return len(table) + 1


async def get_store(request: Request) -> Store:
    return cast(Store, request.state.store)


StoreDep = Annotated[Store, Depends(get_store)]


class SignupRequest(BaseModel):
    email: EmailStr
    name: str = Field(min_length=1, max_length=100)


class UserCreated(BaseModel):
    user_id: int
    email: EmailStr
    name: str
    welcome_email_job: str


class OrderRequest(BaseModel):
    email: EmailStr
    items: list[OrderItem] = Field(min_length=1)


class OrderView(BaseModel):
    order_id: int
    email: EmailStr
    total: float
    jobs: dict[str, str] = Field(description="What each job is -> its id")
    job_statuses: dict[str, JobState | None] = Field(default_factory=dict, description="What each job is -> status")


def create_app(settings: Settings | None = None, registry: Registry | None = None) -> FastAPI:
    platform = Platform(settings, registry)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        yield {"store": Store()}  # the app's own state, next to the platform's

    app = FastAPI(title="Shop", lifespan=platform.lifespan(lifespan))
    app.include_router(platform.router)  # /v1/... : the platform's API, in the shop's app

    @app.post("/signup", status_code=201)
    async def signup(body: SignupRequest, store: StoreDep, jobs: JobsDep) -> UserCreated:
        user_id = store.next_id(store.users)
        store.users[user_id] = body.model_dump()
        # Held in Redis now, released once the response is sent; dropped if this route raises below.
        job_id = await jobs.after_response.enqueue(send_welcome_email, email=body.email, name=body.name)
        return UserCreated(user_id=user_id, email=body.email, name=body.name, welcome_email_job=job_id)

    @app.post("/orders", status_code=201)
    async def place_order(body: OrderRequest, store: StoreDep, jobs: JobsDep) -> OrderView:
        order_id = store.next_id(store.orders)
        total = round(sum(item.quantity * item.unit_price for item in body.items), 2)
        # Ids derived from the order: retrying the same order never queues its jobs twice.
        ids = {
            # Stock is reserved only if the order was saved (the route returned), before the client hears of it.
            "inventory": await jobs.options("on_success", job_id=f"order-{order_id}-inventory").enqueue(
                update_inventory, order_id=order_id, items=body.items
            ),
            # The email and the analytics event can wait until the customer has the answer.
            "receipt": await jobs.options("after_response", job_id=f"order-{order_id}-receipt").enqueue(
                send_order_receipt, order_id=order_id, email=body.email, total=total
            ),
            "analytics": await jobs.options("after_response", job_id=f"order-{order_id}-analytics").enqueue(
                record_analytics_event, event="order_placed", properties={"order_id": order_id, "total": total}
            ),
        }
        store.orders[order_id] = {"order_id": order_id, "email": body.email, "total": total, "jobs": ids}
        return OrderView(**store.orders[order_id])

    @app.get("/orders/{order_id}")
    async def get_order(order_id: int, store: StoreDep, jobs: JobsDep) -> OrderView:
        order = store.orders.get(order_id)
        if order is None:
            raise HTTPException(404, f"no order {order_id}")
        statuses = {}
        for what, job_id in order["jobs"].items():
            record = await jobs.get(job_id)
            statuses[what] = record.status if record else None
        return OrderView(**order, job_statuses=statuses)

    return app
