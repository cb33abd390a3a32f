-- Enqueue jobs in arq's key layout, all of them or none: one script is atomic, and Redis refuses a script
-- (out of memory) only at its first write, so a refused batch writes nothing. An id that exists (queued,
-- running, or with a kept result) is not written; the same payload under the same id means this call is a
-- retry of one that got through (answered 1).
-- KEYS: queue, wake list, then per job: job key, result key. ARGV: max_wake_tokens, then per job: id, payload,
-- score, expires_ms. Returns 1 (written) or 0 (the id exists) per job.
local written, added = {}, 0
for i = 1, (#ARGV - 1) / 4 do
  local job, result, base = KEYS[2 * i + 1], KEYS[2 * i + 2], 4 * i - 2
  if redis.call('EXISTS', result) == 1 then
    written[i] = 0
  elseif redis.call('SET', job, ARGV[base + 1], 'NX', 'PX', ARGV[base + 3]) then
    redis.call('ZADD', KEYS[1], ARGV[base + 2], ARGV[base])
    written[i] = 1
    added = added + 1
  else
    written[i] = redis.call('GET', job) == ARGV[base + 1] and 1 or 0
  end
end
if added > 0 and redis.call('LPUSH', KEYS[2], '1') > tonumber(ARGV[1]) then
  redis.call('LTRIM', KEYS[2], 0, ARGV[1] - 1)
end
return written
