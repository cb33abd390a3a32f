-- Write the end of one try, once, by whoever still holds the job: the only script that ends, retries or
-- requeues a claimed job. Returns 1 when written, 0 when this claim no longer holds the job (nothing changes,
-- nothing is published). A written end is published (its event) and moves the job in the index; the job metrics
-- the worker gathered (core/worker/metrics.py) ride along and are applied only when the end is written.
-- KEYS: lease, try counter, job, result, queue, abort set, holder, then as the mode needs: attempts, wake list,
--       dead letter, dead letters.
-- ARGV: job_id, token, try, "<mode> <result px|-> <keep lease px|-> <retry score> <now ms> <attempts ttl s>
--       <dead letter px|-> <max wake tokens> <event>", function ('' unknown), result (or ''), attempt (or ''),
--       dead letter (or ''), error JSON (or ''), metrics (or ''), then only for a job of a chain or a unique
--       one, ending for good: chain work ('' | run | end | link), unique lock (or ''), then for run: wake list
--       and per child id, function, payload, expires ms; for end: the reason its children do not run.
-- mode: finish | retry | requeue; event: complete | failed | dead | aborted (finish), retrying, requeued.
-- The options travel as one string: every argument costs the client work.
local current = redis.call('GET', KEYS[1])
local abort_mark = current == ARGV[2] .. ABORT_MARK -- an abort may have put the job on the abort set (_lease.lua)
if current ~= ARGV[2] and not abort_mark then
  -- Not our lease. A lapsed one is still ours if nobody claimed the job since (its holder is still our token:
  -- every claim sets it, every outcome clears it) and the job has not ended.
  if current or redis.call('GET', KEYS[7]) ~= ARGV[2] or redis.call('EXISTS', KEYS[4]) == 1 then
    return 0
  end
  abort_mark = true -- the lapsed lease took its mark with it
end
local mode, result_px, keep_lease_px, retry_score, now, attempts_ttl, dead_px, max_wake, event =
  string.match(ARGV[4], '(%S+) (%S+) (%S+) (%S+) (%S+) (%S+) (%S+) (%S+) (%S+)')
local job_id, fn = ARGV[1], ARGV[5]
-- Priorities and limits (_flow.lua) add " ~ <slot 1|0> <priority d|h|l> <low aging ms>" to the options, only
-- when the claim holds a concurrency slot or the job has a priority: the slot is given back (waking a worker), a
-- retried or requeued job keeps its priority.
local slot, prio, aging
if string.find(ARGV[4], '~', 1, true) then slot, prio, aging = string.match(ARGV[4], '~ (%d) (%a) (%d+)$') end
if slot == '1' then
  redis.call('ZREM', slots_key(KEYS[5], fn), ARGV[2])
  if KEYS[9] and redis.call('LPUSH', KEYS[9], '1') > tonumber(max_wake) then
    redis.call('LTRIM', KEYS[9], 0, max_wake - 1)
  end
end
local error_json = (ARGV[9] and ARGV[9] ~= '') and ARGV[9] or 'null'
if ARGV[7] and ARGV[7] ~= '' then
  redis.call('RPUSH', KEYS[8], ARGV[7])
  redis.call('EXPIRE', KEYS[8], attempts_ttl)
end
if ARGV[10] and ARGV[10] ~= '' then apply_metric_deltas(ARGV[10]) end
if mode == 'finish' then
  if keep_lease_px == '-' then
    redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[7])
  else
    redis.call('DEL', KEYS[2], KEYS[3], KEYS[7])
    redis.call('PEXPIRE', KEYS[1], keep_lease_px)
  end
  local events_px = UNSTORED_EVENTS_PX
  if ARGV[6] and ARGV[6] ~= '' then
    events_px = result_px
    if result_px == '-' then
      redis.call('SET', KEYS[4], ARGV[6])
    else
      redis.call('SET', KEYS[4], ARGV[6], 'PX', result_px)
    end
  end
  redis.call('ZREM', KEYS[5], job_id)
  if abort_mark then redis.call('ZREM', KEYS[6], job_id) end
  if ARGV[8] and ARGV[8] ~= '' then
    if dead_px == '-' then
      redis.call('SET', KEYS[10], ARGV[8])
      redis.call('PERSIST', KEYS[8])
      events_px = '-'
    else
      redis.call('SET', KEYS[10], ARGV[8], 'PX', dead_px)
      redis.call('PEXPIRE', KEYS[8], dead_px)
      if events_px ~= '-' and tonumber(dead_px) > tonumber(events_px) then events_px = dead_px end
    end
    redis.call('ZADD', KEYS[11], now, job_id)
  end
  if fn ~= '' then
    local data = '{"try":' .. ARGV[3] .. '}'
    if event == 'failed' or event == 'dead' then data = '{"try":' .. ARGV[3] .. ',"error":' .. error_json .. '}' end
    emit_event(job_id, fn, event, data)
    expire_events(job_id, events_px)
    index_set(job_id, fn, event, now)
  end
  -- Chains and unique jobs (_workflow_*.lua): only when the worker hands such work over.
  local chain = ARGV[11]
  if chain and chain ~= '' then
    if chain == 'run' then
      if chain_run(job_id, KEYS[5], 14, now) > 0 and redis.call('LPUSH', ARGV[13], '1') > tonumber(max_wake) then
        redis.call('LTRIM', ARGV[13], 0, max_wake - 1)
      end
    elseif chain == 'end' then
      chain_end(job_id, ARGV[13], events_px)
    end
    chain_expire(job_id, events_px)
  end
  if ARGV[12] then unique_release(ARGV[12], job_id) end
  return 1
end
redis.call('DEL', KEYS[1], KEYS[7])
if mode == 'retry' then
  -- XX: only a job still on the queue is rescheduled; nothing puts an ended job back.
  redis.call('ZADD', KEYS[5], 'XX', retry_score, job_id)
  if prio == 'h' or prio == 'l' then
    if prio == 'l' then redis.call('ZADD', KEYS[5], 'XX', retry_score + aging, job_id) end
    redis.call('ZADD', priority_set(KEYS[5], prio), retry_score, job_id)
  end
  if fn ~= '' then
    emit_event(job_id, fn, 'retrying',
      '{"try":' .. ARGV[3] .. ',"retry_at":' .. retry_score .. ',"error":' .. error_json .. '}')
    index_set(job_id, fn, 'waiting', retry_score)
  end
else -- requeue: the worker is stopping; the try it took is given back
  redis.call('DECR', KEYS[2])
  local queued = (prio == 'h' or prio == 'l') and redis.call('ZSCORE', KEYS[5], job_id)
  if queued then
    redis.call('ZADD', priority_set(KEYS[5], prio), prio == 'l' and queued - aging or queued, job_id)
  end
  if fn ~= '' then
    local due = redis.call('ZSCORE', KEYS[5], job_id) or now
    emit_event(job_id, fn, 'requeued', '{"scheduled_at":' .. due .. '}')
    index_set(job_id, fn, 'waiting', due)
  end
end
if tonumber(retry_score) <= tonumber(now) and redis.call('LPUSH', KEYS[9], '1') > tonumber(max_wake) then
  redis.call('LTRIM', KEYS[9], 0, max_wake - 1)
end
return 1
