"""The worker process: `arq worker.WorkerSettings`. Run as many as you like, on as many hosts.

arq reads `WorkerSettings.__dict__`, so the class is built flat from the same options the tests use.
"""

from __future__ import annotations

import asyncio

import arq.worker
import uvloop

from core.logging import configure_logging
from core.registry import load_registry
from core.worker import PlatformWorker
from core.worker_config import worker_kwargs
from settings import load_settings

# arq's CLI builds `arq.worker.Worker(**WorkerSettings)`, looking the class up when it runs: pointing
# that name at our subclass is how `arq worker.WorkerSettings` runs the platform's worker (same
# arguments, reliability added; see core/worker/worker.py).
arq.worker.Worker = PlatformWorker  # type: ignore[misc]

# arq's Worker makes its event loop when it is built: uvloop's runs the worker about 20% faster.
asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())

settings = load_settings()
configure_logging(settings)

WorkerSettings = type(
    "WorkerSettings",
    (),
    {
        "__doc__": "arq settings for the platform worker.",
        **worker_kwargs(settings, load_registry(settings)),
    },
)
