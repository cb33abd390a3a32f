-- Put a dead job back on its queue under its own id with fresh tries: only one that is still dead and not
-- queued again. Published as one event (requeued, with when it is due) and moved from the dead index to waiting.
-- KEYS: dead letter, dead letters, job, result, try counter, queue, attempts, wake list, holder.
-- ARGV: job_id, payload, score, expires_ms, max_wake_tokens, function.
if redis.call('EXISTS', KEYS[1]) == 0 then return 'not_found' end
if redis.call('EXISTS', KEYS[3]) == 1 then return 'already_queued' end
redis.call('DEL', KEYS[4], KEYS[5], KEYS[7], KEYS[1], KEYS[9])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('SET', KEYS[3], ARGV[2], 'PX', ARGV[4])
redis.call('ZADD', KEYS[6], ARGV[3], ARGV[1])
emit_event(ARGV[1], ARGV[6], 'requeued', '{"scheduled_at":' .. ARGV[3] .. '}')
expire_events(ARGV[1], ARGV[4])
index_set(ARGV[1], ARGV[6], 'waiting', ARGV[3])
if redis.call('LPUSH', KEYS[8], '1') > tonumber(ARGV[5]) then
  redis.call('LTRIM', KEYS[8], 0, ARGV[5] - 1)
end
return 'requeued'
