"""Run code when a route returns and when its response was sent, without a `yield` dependency.

FastAPI keeps two exit stacks per request: one closed when the route function returned (before the response
is sent), one closed after the response was sent; a `yield` dependency is entered on one of them. Pushing a
callback onto them directly does the same for a fraction of the cost (a `yield` dependency costs about
80 µs a request here, ten per cent of an enqueue), and only when a request needs it.

The FastAPI surface relied on, in this one place (tests/test_embed.py fails when it moves): the ASGI scope
keys below, each an `AsyncExitStack`, set by `fastapi.routing.request_response` (FastAPI >= 0.118).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from contextlib import AsyncExitStack
from types import TracebackType
from typing import Any

import anyio

ROUTE_RETURNED = "fastapi_function_astack"  # closed when the route function returned or raised
RESPONSE_SENT = "fastapi_inner_astack"  # closed after the response was sent (or the request failed)

ExitCallback = Callable[[BaseException | None], Awaitable[None]]
SyncExitCallback = Callable[[BaseException | None], None]


def _stack(scope: MutableMapping[str, Any], key: str) -> AsyncExitStack:
    stack = scope.get(key)
    if not isinstance(stack, AsyncExitStack):
        raise RuntimeError(f"no FastAPI request exit stack {key!r}: call this from a route, during a request")
    return stack


def on_exit(scope: MutableMapping[str, Any], key: str, callback: ExitCallback) -> None:
    """Call `callback(exception or None)` when that stack closes, shielded from cancellation (like FastAPI's
    own `yield` dependencies); the exception it raises, if any, replaces the request's."""

    async def exit_(exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> bool:
        with anyio.CancelScope(shield=True):
            await callback(exc)
        return False

    _stack(scope, key).push_async_exit(exit_)


def on_exit_sync(scope: MutableMapping[str, Any], key: str, callback: SyncExitCallback) -> None:
    """Call `callback(exception or None)` when that stack closes: for a callback that does not await, which
    needs no shield (and costs a few microseconds instead of a cancel scope's dozen)."""

    def exit_(exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> bool:
        callback(exc)
        return False

    _stack(scope, key).push(exit_)
