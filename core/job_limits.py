"""Per-function rate and concurrency limits, enforced across every worker by the claim script.

`@job(rate_limit="5/s", concurrency=2)`: at most 5 starts in any second and 2 runs at once, cluster-wide. Workers
write their functions' limits to one hash per queue at start-up (`keys.job_limits`); the claim script reads it
once per call, only when it exists (core/lua/_flow.lua). A start is a token in a sorted set scored by its time
(a sliding window); a slot is the claim's token scored by its lease's expiry, renewed with the lease and given
back by the finish script, so a worker that dies frees its slots when its leases lapse. A job over a limit is
passed over by the claim: it keeps its place and its tries, and the jobs behind it are still claimed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from arq.connections import ArqRedis

from core import keys

RATE = re.compile(r"(?P<count>[0-9]+)\s*/\s*(?P<every>[0-9]*)\s*(?P<unit>ms|s|m|h)")
UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000}
# How long the claim's "passed over for this limit" mark lasts (claims renew it while the limit holds).
LIMITED_MARK_MS = 2000
# A job passed over for a limit publishes one `limited` event, then at most one per this long while it waits.
LIMITED_EVENT_EVERY_MS = 60_000


class JobLimitsError(ValueError):
    """A function's rate_limit or concurrency cannot be enforced; the message is one line naming it."""


@dataclass(frozen=True)
class Limits:
    """At most `count` starts per `period_ms` (0: no rate limit) and `concurrency` runs at once (0: none)."""

    count: int = 0
    period_ms: int = 0
    concurrency: int = 0

    def encoded(self) -> str:
        """As the claim script reads it."""
        return f"{self.count} {self.period_ms} {self.concurrency}"


def parse(function: str, rate_limit: str | None, concurrency: int | None) -> Limits | None:
    """The limits of one function, checked: None when it has none. `rate_limit` is "<n>/<unit>" or
    "<n>/<k><unit>" (unit ms, s, m or h): "5/s", "100/m", "10/30s"."""
    count = period_ms = slots = 0
    if rate_limit is not None:
        found = RATE.fullmatch(rate_limit.strip()) if isinstance(rate_limit, str) else None
        every = int(found["every"] or 1) if found else 0
        if found is None or int(found["count"]) < 1 or every < 1:
            raise JobLimitsError(
                f"rate_limit of {function}: {rate_limit!r} is not '<n>/<unit>' with n >= 1 (e.g. '5/s', "
                "'100/m', '10/30s'; units ms, s, m, h)"
            )
        count, period_ms = int(found["count"]), every * UNIT_MS[found["unit"]]
    if concurrency is not None:
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
            raise JobLimitsError(f"concurrency of {function}: {concurrency!r} is not a whole number >= 1")
        slots = concurrency
    if not count and not slots:
        return None
    return Limits(count, period_ms, slots)


async def publish(pool: ArqRedis, queue_name: str, limits: Mapping[str, Limits | None]) -> None:
    """Write this worker's functions' limits where the claim script reads them (a function without limits is
    removed, so a limit taken out of the code stops at the next deploy). One round trip, at start-up."""
    limited = {name: spec.encoded() for name, spec in limits.items() if spec is not None}
    unlimited = [name for name, spec in limits.items() if spec is None]
    async with pool.pipeline(transaction=True) as pipe:
        if limited:
            pipe.hset(keys.job_limits(queue_name), mapping=limited)
        if unlimited:
            pipe.hdel(keys.job_limits(queue_name), *unlimited)
        await pipe.execute()


async def renew_slots(pool: ArqRedis, queue_name: str, held: Iterable[tuple[str, str]], expiry_ms: int) -> None:
    """Move the slots of claims whose lease was just renewed to the lease's new expiry (XX: a slot already given
    back stays given back). `held`: (function, token) pairs."""
    async with pool.pipeline(transaction=False) as pipe:
        for function, token in held:
            pipe.zadd(keys.job_slots(queue_name, function), {token: expiry_ms}, xx=True)
        await pipe.execute()


async def waiting_on(pool: ArqRedis, queue_name: str, function: str) -> str | None:
    """The limit a queued job of this function is waiting on ("rate_limit" or "concurrency"), if a claim passed
    its function over in the last LIMITED_MARK_MS."""
    raw = await pool.get(keys.job_limited(queue_name, function))
    return raw.decode() if raw else None
