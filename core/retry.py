"""When a failed try is retried, and after how long: exponential backoff with jitter, per function."""

from __future__ import annotations

import random
from dataclasses import dataclass


class Fatal(Exception):
    """Raise (or subclass) this in a job for a failure that retrying cannot fix: it goes straight to dead letters."""


@dataclass(frozen=True)
class RetryPolicy:
    """Retry any exception (and timeouts) with `delay_s * factor**(try-1)`, capped, spread by `jitter`.

    `give_up_on` lists exception types that are never retried, on top of `Fatal` and invalid arguments.
    """

    delay_s: float = 1.0
    factor: float = 2.0
    max_delay_s: float = 300.0
    jitter: float = 0.1
    retry_on: tuple[type[BaseException], ...] = (Exception,)
    give_up_on: tuple[type[BaseException], ...] = ()

    def should_retry(self, exc: BaseException) -> bool:
        if isinstance(exc, (Fatal, *self.give_up_on)):
            return False
        return isinstance(exc, self.retry_on)

    def delay_for(self, job_try: int) -> float:
        """Seconds to wait before the try after `job_try` (1-based)."""
        base = min(self.max_delay_s, self.delay_s * self.factor ** max(0, job_try - 1))
        return max(0.0, base * (1 + random.uniform(-self.jitter, self.jitter)))
