-- Abort a job. One that no worker holds is ended here, atomically against the claim script: either a worker
-- claimed it (it runs; the abort is handed to its worker through the abort set) or it is ended now.
-- KEYS: queue, job, lease, result, try counter, abort set, holder. ARGV: job_id, aborted result, now_ms,
-- result_px.
if redis.call('EXISTS', KEYS[4]) == 1 then return 'finished' end
if redis.call('EXISTS', KEYS[3]) == 1 then
  redis.call('ZADD', KEYS[6], ARGV[3], ARGV[1])
  return 'aborting'
end
if redis.call('ZREM', KEYS[1], ARGV[1]) == 0 then return 'not_found' end
redis.call('DEL', KEYS[2], KEYS[5], KEYS[7])
if tonumber(ARGV[4]) > 0 then
  redis.call('SET', KEYS[4], ARGV[2], 'PX', ARGV[4])
end
return 'aborted'
