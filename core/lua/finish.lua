-- Write the end of one try, once, by whoever still holds the job: the only script that ends, retries or
-- requeues a claimed job. Returns 1 when written, 0 when this claim no longer holds the job (nothing changes).
-- KEYS: lease, try counter, job, result, queue, abort set, holder, then as the mode needs: attempts, wake list,
--       dead letter, dead letters.
-- ARGV: job_id, token, try, "<mode> <result px|-> <keep lease px|-> <retry score> <now ms> <attempts ttl s>
--       <dead letter px|-> <max wake tokens>", result (or ''), attempt (or ''), dead letter (or '').
-- mode: finish | retry | requeue. The options travel as one string: every argument costs the client work.
local current = redis.call('GET', KEYS[1])
if current ~= ARGV[2] then
  -- Not our lease. A lapsed one is still ours if nobody claimed the job since (its holder is still our token:
  -- every claim sets it, every outcome clears it) and the job has not ended.
  if current or redis.call('GET', KEYS[7]) ~= ARGV[2] or redis.call('EXISTS', KEYS[4]) == 1 then
    return 0
  end
end
local mode, result_px, keep_lease_px, retry_score, now, attempts_ttl, dead_px, max_wake =
  string.match(ARGV[4], '(%S+) (%S+) (%S+) (%S+) (%S+) (%S+) (%S+) (%S+)')
if ARGV[6] and ARGV[6] ~= '' then
  redis.call('RPUSH', KEYS[8], ARGV[6])
  redis.call('EXPIRE', KEYS[8], attempts_ttl)
end
if mode == 'finish' then
  if keep_lease_px == '-' then
    redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[7])
  else
    redis.call('DEL', KEYS[2], KEYS[3], KEYS[7])
    redis.call('PEXPIRE', KEYS[1], keep_lease_px)
  end
  if ARGV[5] and ARGV[5] ~= '' then
    if result_px == '-' then
      redis.call('SET', KEYS[4], ARGV[5])
    else
      redis.call('SET', KEYS[4], ARGV[5], 'PX', result_px)
    end
  end
  redis.call('ZREM', KEYS[5], ARGV[1])
  redis.call('ZREM', KEYS[6], ARGV[1])
  if ARGV[7] and ARGV[7] ~= '' then
    if dead_px == '-' then
      redis.call('SET', KEYS[10], ARGV[7])
      redis.call('PERSIST', KEYS[8])
    else
      redis.call('SET', KEYS[10], ARGV[7], 'PX', dead_px)
      redis.call('PEXPIRE', KEYS[8], dead_px)
    end
    redis.call('ZADD', KEYS[11], now, ARGV[1])
  end
  return 1
end
redis.call('DEL', KEYS[1], KEYS[7])
if mode == 'retry' then
  -- XX: only a job still on the queue is rescheduled; nothing puts an ended job back.
  redis.call('ZADD', KEYS[5], 'XX', retry_score, ARGV[1])
else -- requeue: the worker is stopping; the try it took is given back
  redis.call('DECR', KEYS[2])
end
if tonumber(retry_score) <= tonumber(now) and redis.call('LPUSH', KEYS[9], '1') > tonumber(max_wake) then
  redis.call('LTRIM', KEYS[9], 0, max_wake - 1)
end
return 1
