-- Write the end of one try, once, by whoever still holds the job: the only script that ends, retries or
-- requeues a claimed job. Returns 1 when written, 0 when this claim no longer holds the job (nothing changes).
-- KEYS: lease, try counter, job, result, queue, abort set, attempts, dead letter, dead letters, wake list
-- ARGV: job_id, token, try, mode (finish | retry | requeue), result ('' none), result_px ('' forever),
--       keep_lease_px ('' delete), retry_score, attempt ('' none), attempts_ttl_s, dead_letter ('' none),
--       dead_letter_px ('' forever), now_ms, max_wake_tokens
local current = redis.call('GET', KEYS[1])
if current ~= ARGV[2] then
  -- Not our lease. A lapsed one is still ours if nobody claimed the job since and it has not ended.
  if current or redis.call('GET', KEYS[2]) ~= ARGV[3] or redis.call('EXISTS', KEYS[3]) == 0
      or redis.call('EXISTS', KEYS[4]) == 1 then
    return 0
  end
end
if ARGV[9] ~= '' then
  redis.call('RPUSH', KEYS[7], ARGV[9])
  redis.call('EXPIRE', KEYS[7], ARGV[10])
end
local mode = ARGV[4]
if mode == 'finish' then
  if ARGV[7] == '' then
    redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
  else
    redis.call('DEL', KEYS[2], KEYS[3])
    redis.call('PEXPIRE', KEYS[1], ARGV[7])
  end
  if ARGV[5] ~= '' then
    if ARGV[6] == '' then
      redis.call('SET', KEYS[4], ARGV[5])
    else
      redis.call('SET', KEYS[4], ARGV[5], 'PX', ARGV[6])
    end
  end
  redis.call('ZREM', KEYS[5], ARGV[1])
  redis.call('ZREM', KEYS[6], ARGV[1])
  if ARGV[11] ~= '' then
    if ARGV[12] == '' then
      redis.call('SET', KEYS[8], ARGV[11])
      redis.call('PERSIST', KEYS[7])
    else
      redis.call('SET', KEYS[8], ARGV[11], 'PX', ARGV[12])
      redis.call('PEXPIRE', KEYS[7], ARGV[12])
    end
    redis.call('ZADD', KEYS[9], ARGV[13], ARGV[1])
  end
  return 1
end
redis.call('DEL', KEYS[1])
if mode == 'retry' then
  -- XX: only a job still on the queue is rescheduled; nothing puts an ended job back.
  redis.call('ZADD', KEYS[5], 'XX', ARGV[8], ARGV[1])
else -- requeue: the worker is stopping; the try it took is given back
  redis.call('DECR', KEYS[2])
end
if tonumber(ARGV[8]) <= tonumber(ARGV[13]) and redis.call('LPUSH', KEYS[10], '1') > tonumber(ARGV[14]) then
  redis.call('LTRIM', KEYS[10], 0, ARGV[14] - 1)
end
return 1
