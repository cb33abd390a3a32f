-- Job indexes (core/job_index.py): one sorted set per function; a job's score is its state's band (state number
-- x __INDEX_BAND__) plus the time of its latest change in ms (for `waiting`, when it is due), so a change of
-- state is one ZADD.
local INDEX_STATES = {waiting = 0, in_progress = 1, complete = 2, failed = 3, dead = 4, aborted = 5}
local INDEX_BAND = __INDEX_BAND__

local function index_key(fn)
  return '__INDEX_PREFIX__' .. fn
end

local function index_set(job_id, fn, state, ms)
  redis.call('ZADD', index_key(fn), INDEX_STATES[state] * INDEX_BAND + tonumber(ms), job_id)
end

-- Many jobs of one function at once (a claimed batch), in chunks Lua's unpack takes.
local function index_set_many(ids, fn, state, ms)
  local score = INDEX_STATES[state] * INDEX_BAND + tonumber(ms)
  for first = 1, #ids, 1000 do
    local scored = {}
    for j = first, math.min(#ids, first + 999) do
      scored[#scored + 1] = score
      scored[#scored + 1] = ids[j]
    end
    redis.call('ZADD', index_key(fn), unpack(scored))
  end
end

local function index_functions(names)
  if #names > 0 then redis.call('SADD', '__INDEX_FUNCTIONS__', unpack(names)) end
end
