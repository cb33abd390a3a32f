"""How one try ends: exactly one of these values, decided in one place (core/worker/run.py) and written by one
fenced script (core/worker/record.py). Nothing about a try's end travels any other way."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core.codec import JobError
from core.dead_letters import DeadLetter


@dataclass(frozen=True)
class Succeeded:
    result: bytes | None  # the result payload to store; None when the function keeps no result


@dataclass(frozen=True)
class Retrying:
    delay_s: float
    attempt: dict[str, Any] | None  # the failed try's record (None for a plain arq function)
    error: JobError | None = None


@dataclass(frozen=True)
class Failed:
    error: JobError
    result: bytes | None
    attempt: dict[str, Any] | None
    dead_letter: DeadLetter | None  # None: the failure is kept as the job's result only


@dataclass(frozen=True)
class Aborted:
    result: bytes | None
    before_start: bool


@dataclass(frozen=True)
class Requeued:
    """The worker is stopping (or the job's own code was cancelled): the job goes back, its try given back."""


@dataclass(frozen=True)
class Lost:
    """Another claim holds the job now (its lease lapsed and was taken): this copy writes nothing."""


Outcome = Succeeded | Retrying | Failed | Aborted | Requeued | Lost
