"""What only the worker does: claim jobs, hold their leases, run one try, record its outcome, heartbeat.
Imported by worker.py and the tests alone; the API never imports it."""

from core.worker.worker import PlatformWorker

__all__ = ["PlatformWorker"]
