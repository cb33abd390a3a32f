-- Unique jobs (core/unique.py): a lock `platform:unique:<function>:<digest>` names the job that holds it.

-- The live job holding the lock, or nil: a lock whose job is gone (no payload, no claim) holds nothing.
local function unique_holder(lock)
  local holder = redis.call('GET', lock)
  if not holder then return nil end
  if redis.call('EXISTS', '__JOB_PREFIX__' .. holder, '__LEASE_PREFIX__' .. holder) == 0 then return nil end
  return holder
end

-- The job ended: its lock is released, only if it still names this job.
local function unique_release(lock, job_id)
  if lock and lock ~= '' and redis.call('GET', lock) == job_id then redis.call('DEL', lock) end
end
