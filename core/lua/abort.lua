-- Abort a job. One that no worker holds is ended here, atomically against the claim script: either a worker
-- claimed it (it runs; the abort is handed to its worker through the abort set, and its finish publishes it) or
-- it is ended now: published (aborted), moved in the index and counted.
-- KEYS: queue, job, lease, result, try counter, abort set, holder. ARGV: job_id, aborted result, now_ms,
-- result_px, function ('' when its payload named none), then only for a job of a chain or a unique one: chain
-- work ('' | end | link), unique lock (or ''), the reason its children do not run.
if redis.call('EXISTS', KEYS[4]) == 1 then return 'finished' end
local lease = redis.call('GET', KEYS[3])
if lease then
  if string.sub(lease, -#ABORT_MARK) ~= ABORT_MARK then redis.call('APPEND', KEYS[3], ABORT_MARK) end
  redis.call('ZADD', KEYS[6], ARGV[3], ARGV[1])
  return 'aborting'
end
if redis.call('ZREM', KEYS[1], ARGV[1]) == 0 then return 'not_found' end
redis.call('DEL', KEYS[2], KEYS[5], KEYS[7])
local events_px = UNSTORED_EVENTS_PX
if tonumber(ARGV[4]) > 0 then
  redis.call('SET', KEYS[4], ARGV[2], 'PX', ARGV[4])
  events_px = ARGV[4]
end
local fn = ARGV[5]
if fn and fn ~= '' then
  emit_event(ARGV[1], fn, 'aborted', '{}')
  expire_events(ARGV[1], events_px)
  index_set(ARGV[1], fn, 'aborted', ARGV[3])
  count_metric('finished|' .. fn .. '|aborted', 1)
end
-- Chains and unique jobs (_workflow_*.lua): only when the caller hands such work over.
if ARGV[6] and ARGV[6] ~= '' then
  if ARGV[6] == 'end' then chain_end(ARGV[1], ARGV[8], events_px) end
  chain_expire(ARGV[1], events_px)
end
if ARGV[7] then unique_release(ARGV[7], ARGV[1]) end
return 'aborted'
