-- Priorities and per-function limits (core/priority.py, core/job_limits.py). Nothing here runs for a queue
-- that uses neither: the claim looks for their keys with one EXISTS each.

-- A priority's set beside arq's queue (`h` high, `l` low): the job's id scored by when it is due.
local function priority_set(queue, prio)
  return '__PRIORITY_PREFIX__' .. queue .. (prio == 'h' and ':high' or ':low')
end

-- The limits of the queue's functions (written by workers at start-up): fn -> {rate n, period ms, concurrency}.
local function read_limits(hash)
  if redis.call('EXISTS', hash) == 0 then return nil end
  local limits, flat = {}, redis.call('HGETALL', hash)
  for i = 1, #flat, 2 do
    local n, period, conc = string.match(flat[i + 1], '^(%d+) (%d+) (%d+)$')
    if n then limits[flat[i]] = {tonumber(n), tonumber(period), tonumber(conc)} end
  end
  return limits
end

local function rate_key(queue, fn) return '__JOB_RATE_PREFIX__' .. queue .. ':' .. fn end
local function slots_key(queue, fn) return '__JOB_SLOTS_PREFIX__' .. queue .. ':' .. fn end
local function limited_key(queue, fn) return '__JOB_LIMITED_PREFIX__' .. queue .. ':' .. fn end

-- What one claim call knows of a limited function: starts and slots left, read once per call. Old starts and
-- slots whose lease lapsed (their worker died) are pruned here, so a lost lease frees its slot.
local function limit_state(states, queue, fn, spec, now)
  local state = states[fn]
  if state then return state end
  state = {}
  if spec[1] > 0 then
    local key = rate_key(queue, fn)
    redis.call('ZREMRANGEBYSCORE', key, '-inf', now - spec[2])
    state.rate = spec[1] - redis.call('ZCARD', key)
  end
  if spec[3] > 0 then
    local key = slots_key(queue, fn)
    redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
    state.slots = spec[3] - redis.call('ZCARD', key)
  end
  states[fn] = state
  return state
end

-- Take a start (and a slot, scored by the lease's expiry) for a claim of `fn`: returns fn when it took a slot,
-- '' when it needs none, or nil when over a limit: then the limit is flagged for `GET /v1/jobs/{id}` and the
-- time it frees up and the limit are returned as the second and third values.
local function limit_take(states, queue, fn, spec, token, now, lease_ms)
  local state = limit_state(states, queue, fn, spec, now)
  local over = nil
  if state.rate and state.rate <= 0 then over = 'rate_limit' elseif state.slots and state.slots <= 0 then
    over = 'concurrency'
  end
  if over then
    if not state.wake then
      local key = over == 'rate_limit' and rate_key(queue, fn) or slots_key(queue, fn)
      local first = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
      state.wake = first[2] and (tonumber(first[2]) + (over == 'rate_limit' and spec[2] or 0)) or now + 1
      redis.call('SET', limited_key(queue, fn), over, 'PX', __JOB_LIMITED_PX__)
    end
    return nil, state.wake, over
  end
  if state.rate then
    local key = rate_key(queue, fn)
    redis.call('ZADD', key, now, token)
    redis.call('PEXPIRE', key, spec[2] + 1000)
    state.rate = state.rate - 1
  end
  if state.slots then
    redis.call('ZADD', slots_key(queue, fn), now + lease_ms, token)
    state.slots = state.slots - 1
    return fn
  end
  return ''
end

-- A job passed over for a limit: its `limited` event, once (then at most once a JOB_WAITING_PX while it waits).
local function publish_limited(id, fn, over)
  if redis.call('SET', '__JOB_WAITING_PREFIX__' .. id, over, 'NX', 'PX', __JOB_WAITING_PX__) then
    emit_event(id, fn, 'limited', '{"on":"' .. over .. '"}')
  end
end

-- A limited function's job that starts: its next wait publishes again.
local function forget_limited(id)
  redis.call('DEL', '__JOB_WAITING_PREFIX__' .. id)
end
