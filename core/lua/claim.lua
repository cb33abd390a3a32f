-- Claim up to ARGV[2] due jobs of the queue KEYS[1] for one worker, in one round trip.
-- A claim is the job's lease key set NX to a token unique to this claim (worker id, claim time, the worker's
-- claim call number, index),
-- and the job's holder key set to the same token: the holder outlives a lapsed lease, so a lapsed claim can
-- tell whether anyone claimed the job since. Reads at most ARGV[3] due ids, ARGV[4] at a time: running jobs stay in
-- the queue until they end, so the first due ids may all be taken. Returns the claims and the next due score.
-- Each claimed job whose payload names its function (the JSON payloads the platform writes) is published
-- (started) and moved to the in_progress index, one index write per function of the batch, when ARGV[14] is 1.
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
while offset < limit and #claimed < want do
  local count = math.min(page, limit - offset)
  local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'WITHSCORES', 'LIMIT', offset, count)
  for i = 1, #due, 2 do
    if #claimed >= want then break end
    local id = due[i]
    local token = ARGV[10] .. ':' .. ARGV[1] .. ':' .. ARGV[13] .. ':' .. #claimed
    if not running[id] and redis.call('SET', ARGV[6] .. id, token, 'NX', 'PX', ARGV[5]) then
      local payload = redis.call('GET', ARGV[7] .. id)
      if not payload and redis.call('EXISTS', ARGV[11] .. id) == 1 then
        -- It already ended (its result is kept): a stray queue entry, never a job to run again.
        redis.call('ZREM', KEYS[1], id)
        redis.call('DEL', ARGV[6] .. id)
      else
        -- arq's try counter: a first try sets it with its lifetime in one command, a later one counts on.
        local try = 1
        if not redis.call('SET', ARGV[8] .. id, 1, 'NX', 'EX', ARGV[9]) then
          try = redis.call('INCR', ARGV[8] .. id)
          if try == 1 then redis.call('EXPIRE', ARGV[8] .. id, ARGV[9]) end -- counting on from a requeue's 0
        end
        redis.call('SET', ARGV[12] .. id, token, 'EX', ARGV[9])
        local aborted = aborts and redis.call('ZREM', KEYS[2], id) or 0
        claimed[#claimed + 1] = {id, due[i + 1], payload or false, try, aborted, token}
        local fn = publish and payload and string.match(payload, '^{"t":[^,]*,"f":"([^"\\]+)"')
        if fn then
          if aborted == 0 then emit_event(id, fn, 'started', '{"try":' .. try .. '}') end
          if not started[fn] then
            started[fn] = {}
            names[#names + 1] = fn
          end
          started[fn][#started[fn] + 1] = id
        end
      end
    end
  end
  if #due < count * 2 then break end
  offset = offset + count
end
for _, fn in ipairs(names) do
  index_set_many(started[fn], fn, 'in_progress', now)
end
local nxt = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. ARGV[1], '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
return {claimed, nxt[2] or ''}
