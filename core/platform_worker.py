"""The old path of the platform's worker class; it lives in `core.worker` now."""

from core.worker import PlatformWorker

__all__ = ["PlatformWorker"]
