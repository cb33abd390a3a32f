"""The HTTP edge. What a user's own app imports: the platform's router and lifespan (`Platform`), and the
route dependency that enqueues typed jobs (`JobsDep`, a `Jobs` handle, with a `Timing`)."""

from service.deps import JobsDep
from service.handle import Jobs, Timing
from service.platform import Platform

__all__ = ["Jobs", "JobsDep", "Platform", "Timing"]
