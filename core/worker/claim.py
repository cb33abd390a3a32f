"""Claiming due jobs: a batch in one round trip (core/lua/claim.lua), each claim owned by a token.

arq claims a job with four sequential round trips and reads it with a fifth. The script does the same for a
whole batch, with arq's guarantees (one claim per job, its try counter incremented, a pending abort taken, its
payload returned), and sets the job's lease to a token unique to this claim, which every later write about the
job must present (core/lua/finish.lua, core/lua/renew.lua).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from arq.connections import ArqRedis

from core import keys, wire
from core.scripts import scripts

# How long a job's try counter lives, as arq keeps it.
TRY_COUNTER_TTL_S = 88_400
# Due ids read per step of the script (it pages on past running jobs, up to the worker's read limit).
PAGE = 100


@dataclass(frozen=True)
class Claim:
    """One job this worker now holds: its lease is `token` until it ends, lapses or is lost."""

    job_id: str
    score: int
    payload: bytes | None
    job_try: int
    aborted: bool
    token: str

    @property
    def started_ms(self) -> int:
        """When the claim was made (the token carries it, so a job's start time costs no write)."""
        return wire.lease_started_ms(self.token) or 0


async def claim(
    pool: ArqRedis,
    queue_name: str,
    worker_id: str,
    now_ms: int,
    want: int,
    read_limit: int,
    lease_ms: int,
    call_number: int = 0,
    *,
    publish: bool = True,
    running: Collection[str] = (),
) -> tuple[list[Claim], int | None]:
    """Claim up to `want` due jobs, reading at most `read_limit` due ids; also the score of the next
    deferred job (so the worker knows how long it may sleep). `publish`: publish and index each start (a worker
    built from arq's arguments alone writes arq's keys only). `running`: the ids of the jobs the worker holds,
    still on the queue until they end: the script passes over them instead of failing to claim each again (a
    command a job), and a lease of ours that lapsed is taken back by the renewal, not claimed anew."""
    args: list[str | int] = [
        now_ms, want, read_limit, min(PAGE, read_limit), lease_ms, keys.LEASE_PREFIX, keys.JOB_PREFIX,
        keys.TRY_PREFIX, TRY_COUNTER_TTL_S, worker_id, keys.RESULT_PREFIX, keys.HOLDER_PREFIX, call_number,
        int(publish), *running,
    ]  # fmt: skip
    rows, next_due = await scripts(pool).claim(keys=[queue_name, keys.ABORT_SET], args=args)
    claims = [
        Claim(row[0].decode(), int(float(row[1])), row[2] or None, int(row[3]), bool(row[4]), row[5].decode())
        for row in rows
    ]
    return claims, int(float(next_due)) if next_due else None
