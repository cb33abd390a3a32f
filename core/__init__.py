"""What job authors import, from one place:

    from core import JobContext, job, cron, every, Fatal, RetryPolicy, report_progress, enqueue_from_job, once, then

The modules these come from (`core.registry`, `core.context`, ...) keep working as import paths too.
"""

from core.chains import then
from core.context import JobContext
from core.enqueue import enqueue_from_job
from core.idempotency import once
from core.progress import report_progress
from core.registry import cron, every, job
from core.retry import Fatal, RetryPolicy

__all__ = [
    "Fatal",
    "JobContext",
    "RetryPolicy",
    "cron",
    "enqueue_from_job",
    "every",
    "job",
    "once",
    "report_progress",
    "then",
]
