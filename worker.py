"""The worker process: `arq worker.WorkerSettings`. Run as many as you like, on as many hosts.

arq reads `WorkerSettings.__dict__`, so the class is built flat from the same options the tests use.
"""

from __future__ import annotations

from core.logging import configure_logging
from core.registry import load_job_modules
from core.worker_config import worker_kwargs
from settings import load_settings

settings = load_settings()
configure_logging(settings)

WorkerSettings = type(
    "WorkerSettings",
    (),
    {
        "__doc__": "arq settings for the platform worker.",
        **worker_kwargs(settings, load_job_modules(settings.job_modules)),
    },
)
