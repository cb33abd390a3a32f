"""Leases: a running job's claim lives `JOB_LEASE_SECONDS` and its worker renews it, so a crashed worker's jobs
run again within a lease. Renewal proves the claim (core/lua/renew.lua): a copy whose job was taken by another
claim learns it here, and its worker cancels it."""

from __future__ import annotations

from collections.abc import Sequence

from arq.connections import ArqRedis

from core import keys
from core.scripts import scripts
from core.worker.claim import Claim


async def renew(pool: ArqRedis, claims: Sequence[Claim], lease_ms: int) -> list[Claim]:
    """Renew these claims' leases in one round trip; returns the claims that are no longer held."""
    if not claims:
        return []
    script_keys: list[str] = []
    args: list[str | int] = [lease_ms]
    for held in claims:
        script_keys += [keys.in_progress(held.job_id), keys.holder(held.job_id), keys.result(held.job_id)]
        args.append(held.token)
    still = await scripts(pool).renew(keys=script_keys, args=args)
    return [held for held, ok in zip(claims, still, strict=True) if not ok]
