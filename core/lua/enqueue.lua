-- Enqueue jobs in arq's key layout, all of them or none: one script is atomic, and Redis refuses a script
-- (out of memory) only at its first write, so a refused batch writes nothing. An id that exists (queued,
-- running, or with a kept result) is not written; the same payload under the same id means this call is a
-- retry of one that got through (answered 1). Each job written is published (queued or deferred), indexed as
-- waiting and counted as enqueued.
-- KEYS: queue, wake list, then per job: job key, result key. ARGV: max_wake_tokens, now_ms, job count, then per
-- job: id, payload, score (with a priority: "<score on the queue> <h|l> <due>"), expires_ms, function; then, only
-- for unique or chained jobs: index, unique lock (or ''), chain records (or ''). Returns 1 (written) or 0 (the
-- id exists) per job, or the id of the unique job that holds its lock.
local written, added = {}, 0
local now = tonumber(ARGV[2])
local count = tonumber(ARGV[3])
local enqueued, names = {}, {}
local locks, links = nil, nil -- unique and chain work, only when some job of the call has any
if #ARGV > 3 + 5 * count then
  locks, links = {}, {}
  for at = 4 + 5 * count, #ARGV, 3 do
    locks[tonumber(ARGV[at])] = ARGV[at + 1]
    links[tonumber(ARGV[at])] = ARGV[at + 2]
  end
end
for i = 1, count do
  local job, result, base = KEYS[2 * i + 1], KEYS[2 * i + 2], 5 * i - 1
  local lock = locks and locks[i]
  local holder = lock and lock ~= '' and unique_holder(lock)
  if redis.call('EXISTS', result) == 1 then
    written[i] = 0
  elseif holder and holder ~= ARGV[base] then
    written[i] = holder
  elseif redis.call('SET', job, ARGV[base + 1], 'NX', 'PX', ARGV[base + 3]) then
    local id, score, fn = ARGV[base], ARGV[base + 2], ARGV[base + 4]
    if lock and lock ~= '' then redis.call('SET', lock, id, 'PX', ARGV[base + 3]) end
    local queued = score
    -- A priority (core/priority.py) comes as "<score on the queue> <h|l> <due>": its set holds the job too.
    local prio, due = string.match(score, '^%S+ (%a) (%S+)$')
    if prio then
      queued, score = string.match(score, '^(%S+)'), due
      redis.call('ZADD', priority_set(KEYS[1], prio), score, id)
    end
    redis.call('ZADD', KEYS[1], queued, id)
    written[i] = 1
    added = added + 1
    emit_event(id, fn, tonumber(score) > now and 'deferred' or 'queued',
      '{"scheduled_at":' .. score .. ',"enqueued_at":' .. ARGV[2] .. '}')
    expire_events(id, ARGV[base + 3])
    index_set(id, fn, 'waiting', score)
    if links and links[i] and links[i] ~= '' then chain_write(links[i], ARGV[base + 3]) end
    if not enqueued[fn] then
      enqueued[fn] = 0
      names[#names + 1] = fn
    end
    enqueued[fn] = enqueued[fn] + 1
  else
    written[i] = redis.call('GET', job) == ARGV[base + 1] and 1 or 0
  end
end
for _, fn in ipairs(names) do count_metric('enqueued|' .. fn, enqueued[fn]) end
index_functions(names)
if added > 0 and redis.call('LPUSH', KEYS[2], '1') > tonumber(ARGV[1]) then
  redis.call('LTRIM', KEYS[2], 0, ARGV[1] - 1)
end
return written
