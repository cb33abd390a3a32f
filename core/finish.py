"""Ending a finished job in one command: the same writes as arq's finish transaction (store the result,
drop the job, its try counter and its claim, take it off the queue and the abort set), atomic as a Lua
script, but one command for the client to encode instead of six, the worker's largest per-job cost."""

from __future__ import annotations

from arq.connections import ArqRedis
from redis.commands.core import AsyncScript

from core import keys

_FINISH_SCRIPT = """
if ARGV[4] == '' then
  redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
else
  redis.call('DEL', KEYS[2], KEYS[3])
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
end
if ARGV[2] ~= '' then
  if ARGV[3] == '' then
    redis.call('SET', KEYS[4], ARGV[2])
  else
    redis.call('SET', KEYS[4], ARGV[2], 'PX', ARGV[3])
  end
end
redis.call('ZREM', KEYS[5], ARGV[1])
redis.call('ZREM', KEYS[6], ARGV[1])
return 1
"""


class Finisher:
    """The finish script bound to one pool and queue."""

    def __init__(self, pool: ArqRedis, queue_name: str) -> None:
        self.script: AsyncScript = pool.register_script(_FINISH_SCRIPT)
        self.queue_name = queue_name

    async def finish(
        self, job_id: str, result_data: bytes | None, result_px: int | None, keep_in_progress_px: int | None
    ) -> None:
        """Record a finished job; `result_px` None keeps the result forever, `keep_in_progress_px` keeps the
        claim a while longer (arq does this for cron jobs) instead of deleting it."""
        script_keys = [
            keys.in_progress(job_id),
            keys.retry(job_id),
            keys.job(job_id),
            keys.result(job_id),
            keys.ABORT_SET,
            self.queue_name,
        ]
        args: list[str | bytes | int] = [
            job_id,
            result_data or b"",
            "" if result_px is None else result_px,
            "" if keep_in_progress_px is None else keep_in_progress_px,
        ]
        await self.script(keys=script_keys, args=args)
