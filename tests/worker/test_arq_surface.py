"""`core.worker.arq_surface`: every piece of arq's Worker PlatformWorker relies on is still there."""

from __future__ import annotations

import inspect

from arq.connections import ArqRedis
from arq.worker import Worker, func

from core.worker import PlatformWorker, arq_surface


async def _noop(ctx: dict[str, object]) -> None:
    return None


def test_arq_worker_still_has_what_the_platform_relies_on() -> None:
    for name in (*arq_surface.INHERITED_METHODS, *arq_surface.SIGNAL_HANDLERS, *arq_surface.REPLACED_METHODS):
        assert callable(getattr(Worker, name, None)), f"arq's Worker has no {name}()"
    worker = Worker(functions=[func(_noop, name="noop")], redis_pool=ArqRedis())
    missing = [name for name in arq_surface.ATTRIBUTES if not hasattr(worker, name)]
    assert missing == []


def test_platform_worker_keeps_arqs_signature() -> None:
    """arq's CLI passes a WorkerSettings entry on only when the Worker's signature names it."""
    assert inspect.signature(PlatformWorker) == inspect.signature(Worker)
