"""Claiming due jobs in one round trip.

arq claims a job with four sequential round trips (WATCH, EXISTS, ZSCORE, MULTI/PSETEX/EXEC) and then
reads it with a fifth. This script does the same for a whole batch at once, with arq's guarantees: a
job is claimed by setting its in-progress key only if absent (one claim per job), its try counter is
incremented, a pending abort is taken, and its payload is returned. It also returns when the next
deferred job comes due, so the worker knows how long it may sleep.
"""

from __future__ import annotations

from dataclasses import dataclass

from arq.connections import ArqRedis
from arq.constants import in_progress_key_prefix, job_key_prefix, retry_key_prefix
from redis.commands.core import AsyncScript

from core import keys

# How long a job's try counter lives, as arq keeps it.
TRY_COUNTER_TTL_S = 88_400

_CLAIM_SCRIPT = """
local claimed = {}
local want = tonumber(ARGV[2])
local page = tonumber(ARGV[3])
-- Running jobs stay in the queue until they finish, so the first due ids may all be taken: page on.
for offset = 0, page * 19, page do
  local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'WITHSCORES', 'LIMIT', offset, page)
  for i = 1, #due, 2 do
    if #claimed >= want then break end
    local id = due[i]
    if redis.call('SET', ARGV[5] .. id, '1', 'NX', 'PX', ARGV[4]) then
      local try = redis.call('INCR', ARGV[7] .. id)
      redis.call('EXPIRE', ARGV[7] .. id, ARGV[8])
      local aborted = redis.call('ZREM', KEYS[2], id)
      claimed[#claimed + 1] = {id, due[i + 1], redis.call('GET', ARGV[6] .. id), try, aborted}
    end
  end
  if #claimed >= want or #due < page * 2 then break end
end
local nxt = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. ARGV[1], '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
return {claimed, nxt[2] or ''}
"""


@dataclass(frozen=True)
class ClaimedJob:
    job_id: str
    score: int
    payload: bytes | None
    job_try: int
    aborted: bool


class Claimer:
    """The claim script bound to one pool and queue."""

    def __init__(self, pool: ArqRedis, queue_name: str, lease_s: float) -> None:
        self.script: AsyncScript = pool.register_script(_CLAIM_SCRIPT)
        self.keys = [queue_name, keys.ABORT_SET]
        self.lease_ms = int(lease_s * 1000)

    async def claim(self, now_ms: int, want: int, scan: int) -> tuple[list[ClaimedJob], int | None]:
        """Claim up to `want` due jobs, reading due ids `scan` at a time (at most 20 pages); also the
        score of the next deferred job."""
        prefixes = [in_progress_key_prefix, job_key_prefix, retry_key_prefix]
        args: list[str | int] = [now_ms, want, scan, self.lease_ms, *prefixes, TRY_COUNTER_TTL_S]
        rows, next_due = await self.script(keys=self.keys, args=args)
        claimed = [
            ClaimedJob(row[0].decode(), int(float(row[1])), row[2] or None, int(row[3]), bool(row[4])) for row in rows
        ]
        return claimed, int(float(next_due)) if next_due else None
