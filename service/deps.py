"""The only glue between routes and the lifespan's state. `async def` on purpose: FastAPI runs a plain
`def` dependency in a worker thread, a hand-off per request that halved the API's throughput."""

from __future__ import annotations

from typing import Annotated, cast

from arq.connections import ArqRedis
from fastapi import Depends, Request

from core import correlation
from core.registry import Registry
from service.auth import ANONYMOUS, Principal
from service.event_hub import EventHub
from service.handle import Jobs
from service.limits import WaitSlots
from settings import Settings


async def get_pool(request: Request) -> ArqRedis:
    return cast(ArqRedis, request.state.pool)


async def get_registry(request: Request) -> Registry:
    return cast(Registry, request.state.registry)


async def get_settings(request: Request) -> Settings:
    return cast(Settings, request.state.settings)


async def get_waits(request: Request) -> WaitSlots:
    return cast(WaitSlots, request.state.waits)


async def get_events(request: Request) -> EventHub:
    return cast(EventHub, request.state.events)


async def get_principal(request: Request) -> Principal:
    """Who is calling, as the auth middleware found; anonymous on public routes."""
    return cast(Principal, getattr(request.state, "principal", ANONYMOUS))


PoolDep = Annotated[ArqRedis, Depends(get_pool)]
RegistryDep = Annotated[Registry, Depends(get_registry)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
WaitSlotsDep = Annotated[WaitSlots, Depends(get_waits)]
EventHubDep = Annotated[EventHub, Depends(get_events)]
PrincipalDep = Annotated[Principal, Depends(get_principal)]


async def get_jobs(request: Request) -> Jobs:
    """The route's handle on the queue; it hooks into the request's end only when a route uses a timing mode
    that needs it (`on_success`, `after_response`)."""
    state = request.scope.get("state") or {}
    if "inflight" not in state:
        raise RuntimeError("JobsDep needs the platform's lifespan: FastAPI(lifespan=platform.lifespan())")
    if correlation.current.get() is None:  # an app without the platform's guard: its jobs carry the request too
        correlation.current.set(correlation.Correlation(*correlation.from_headers(request.scope["headers"])))
    return Jobs(
        state["pool"], state["registry"], state["settings"], state["inflight"], request.scope, state.get("releases")
    )


JobsDep = Annotated[Jobs, Depends(get_jobs)]
