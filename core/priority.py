"""Job priorities: `high`, `default` (arq's own queue, untouched) and `low`.

Every job stays on arq's queue, so status, aborts, queue counts and raw arq tools see it. A high job is also
put in a set of its own beside the queue (core/lua/_flow.lua), which the claim reads first, only when it exists:
a high job enqueued behind any backlog starts at the next claim. A low job is put on arq's queue
`LOW_AGING_S` later than it is due, and in a low set the claim reads last, only with slots to spare: it runs
as soon as a worker has nothing else due, and once it has waited `LOW_AGING_S` it is taken like a default job
enqueued then, so a steady stream of default jobs cannot starve it.
"""

from __future__ import annotations

from typing import Literal

Priority = Literal["high", "default", "low"]
PRIORITIES: tuple[Priority, ...] = ("high", "default", "low")
# How long a low job waits for idle slots before it is taken like a default job.
LOW_AGING_S = 60.0
# The mark a non-default job's payload carries (after arq's fields, which arq ignores), and its one-letter code
# in the scripts.
_MARKS = {"high": b',"p":"high"}', "low": b',"p":"low"}'}
CODES = {"high": "h", "low": "l"}


def check(priority: str) -> Priority:
    """The priority, or ValueError naming the three."""
    if priority not in PRIORITIES:
        raise ValueError(f"priority must be one of {', '.join(PRIORITIES)} (got {priority!r})")
    return priority


def mark(payload: bytes, priority: Priority) -> bytes:
    """A job payload carrying its priority (the default one carries nothing: arq's payload unchanged)."""
    return payload if priority == "default" else payload[:-1] + _MARKS[priority]


def of_payload(payload: bytes | None) -> Priority:
    """A job's priority from its payload's last bytes (no decoding)."""
    if payload is None or not payload.endswith(b'"}'):
        return "default"
    if payload.endswith(_MARKS["high"]):
        return "high"
    if payload.endswith(_MARKS["low"]):
        return "low"
    return "default"


def low_aging_ms() -> int:
    return int(LOW_AGING_S * 1000)


def script_score(score: int, priority: Priority) -> int | str:
    """What the enqueue script takes for a job's score: its due time for a default job (as before), else
    "<score on arq's queue> <code> <due time>"."""
    if priority == "default":
        return score
    queued = score + low_aging_ms() if priority == "low" else score
    return f"{queued} {CODES[priority]} {score}"
