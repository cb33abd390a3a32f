-- Claim up to ARGV[2] due jobs of the queue KEYS[1] for one worker, in one round trip.
-- A claim is the job's lease key set NX to a token unique to this claim (worker id, claim time, the worker's
-- claim call number, index),
-- and the job's holder key set to the same token: the holder outlives a lapsed lease, so a lapsed claim can
-- tell whether anyone claimed the job since. Reads at most ARGV[3] due ids, ARGV[4] at a time: running jobs stay in
-- the queue until they end, so the first due ids may all be taken. Returns the claims and the next due score.
-- Each claimed job whose payload names its function (the JSON payloads the platform writes) is published
-- (started) and moved to the in_progress index, one index write per function of the batch, when ARGV[14] is 1.
-- Priorities and limits (_flow.lua): due high-priority jobs are taken first and due low-priority ones last, each
-- only when its set exists; a job whose function is over its rate or concurrency limit (KEYS[3], read only when
-- it exists) is passed over, keeping its place and its tries, and the time the limit frees up counts as a due
-- time. A claim row ends with its function's name when it holds a concurrency slot, else ''.
-- KEYS: queue, abort set, limits hash.
-- ARGV: now_ms, want, read_limit, page, lease_ms, lease_prefix, job_prefix, try_prefix, try_ttl_s, token_prefix,
--       result_prefix, holder_prefix, claim call number, publish (1 or 0), then the ids the worker runs
local claimed = {}
-- The worker's own running jobs stay on the queue until they end: no SET NX that cannot take them.
local running = {}
for i = 15, #ARGV do running[ARGV[i]] = true end
-- An abort is rare: look for one per job only when the abort set exists at all.
local aborts = redis.call('EXISTS', KEYS[2]) == 1
local want, limit, page = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local offset = 0
local now = tonumber(ARGV[1])
local started, names = {}, {}
local publish = ARGV[14] == '1'
local limits = read_limits(KEYS[3])
local limit_states, limit_wake, limit_now = {}, nil, now
if limits then
  -- Limits count by Redis's clock, not each worker's: a claim that reached Redis late cannot backdate a start.
  local time = redis.call('TIME')
  limit_now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
end

-- Claim one due job: 'ok', 'held' (another claim has it), 'ended' or 'limited'.
local function take(id, score)
  local token = ARGV[10] .. ':' .. ARGV[1] .. ':' .. ARGV[13] .. ':' .. #claimed
  if running[id] or not redis.call('SET', ARGV[6] .. id, token, 'NX', 'PX', ARGV[5]) then return 'held' end
  local payload = redis.call('GET', ARGV[7] .. id)
  if not payload and redis.call('EXISTS', ARGV[11] .. id) == 1 then
    -- It already ended (its result is kept): a stray queue entry, never a job to run again.
    redis.call('ZREM', KEYS[1], id)
    redis.call('DEL', ARGV[6] .. id)
    return 'ended'
  end
  local fn = (publish or limits) and payload and string.match(payload, '^{"t":[^,]*,"f":"([^"\\]+)"')
  local slot = ''
  if limits and fn and limits[fn] then
    local wake, over
    slot, wake, over = limit_take(limit_states, KEYS[1], fn, limits[fn], token, limit_now, tonumber(ARGV[5]))
    if not slot then
      redis.call('DEL', ARGV[6] .. id)
      if not limit_wake or wake < limit_wake then limit_wake = wake end
      if publish then publish_limited(id, fn, over) end
      return 'limited'
    end
    if publish then forget_limited(id) end
  end
  -- arq's try counter: a first try sets it with its lifetime in one command, a later one counts on.
  local try = 1
  if not redis.call('SET', ARGV[8] .. id, 1, 'NX', 'EX', ARGV[9]) then
    try = redis.call('INCR', ARGV[8] .. id)
    if try == 1 then redis.call('EXPIRE', ARGV[8] .. id, ARGV[9]) end -- counting on from a requeue's 0
  end
  redis.call('SET', ARGV[12] .. id, token, 'EX', ARGV[9])
  local aborted = aborts and redis.call('ZREM', KEYS[2], id) or 0
  claimed[#claimed + 1] = {id, score, payload or false, try, aborted, token, slot}
  if publish and fn then
    if aborted == 0 then emit_event(id, fn, 'started', '{"try":' .. try .. '}') end
    if not started[fn] then
      started[fn] = {}
      names[#names + 1] = fn
    end
    started[fn][#started[fn] + 1] = id
  end
  return 'ok'
end

-- The due jobs of a priority set, oldest first (one page): an entry leaves the set once claimed, running or gone.
local function take_priority(prio)
  local set = priority_set(KEYS[1], prio)
  if #claimed >= want or redis.call('EXISTS', set) == 0 then return end
  local due = redis.call('ZRANGEBYSCORE', set, '-inf', ARGV[1], 'WITHSCORES', 'LIMIT', 0, page)
  for i = 1, #due, 2 do
    if #claimed >= want then break end
    local id = due[i]
    if not redis.call('ZSCORE', KEYS[1], id) or take(id, due[i + 1]) ~= 'limited' then
      redis.call('ZREM', set, id)
    end
  end
end

take_priority('h')
while offset < limit and #claimed < want do
  local count = math.min(page, limit - offset)
  local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'WITHSCORES', 'LIMIT', offset, count)
  for i = 1, #due, 2 do
    if #claimed >= want then break end
    take(due[i], due[i + 1])
  end
  if #due < count * 2 then break end
  offset = offset + count
end
take_priority('l')
for _, fn in ipairs(names) do
  index_set_many(started[fn], fn, 'in_progress', now)
end
local nxt = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. ARGV[1], '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
local next_due = nxt[2] or ''
if limit_wake and (next_due == '' or limit_wake < tonumber(next_due)) then next_due = tostring(limit_wake) end
return {claimed, next_due}
