-- Job indexes (core/job_index.py): one sorted set per index state and function; a change of state moves the
-- job's id from one to the other, scored by the time of the change (for `waiting`, when it is due).
local function index_key(state, fn)
  return '__INDEX_PREFIX__' .. state .. ':' .. fn
end

local function index_move(job_id, fn, from, to, score)
  if from then redis.call('ZREM', index_key(from, fn), job_id) end
  redis.call('ZADD', index_key(to, fn), score, job_id)
end

-- Many jobs of one function at once (a claimed batch), in chunks Lua's unpack takes.
local function index_move_many(ids, fn, from, to, score)
  for first = 1, #ids, 1000 do
    local last = math.min(#ids, first + 999)
    local chunk, scored = {}, {}
    for j = first, last do
      chunk[#chunk + 1] = ids[j]
      scored[#scored + 1] = score
      scored[#scored + 1] = ids[j]
    end
    redis.call('ZREM', index_key(from, fn), unpack(chunk))
    redis.call('ZADD', index_key(to, fn), unpack(scored))
  end
end

local function index_functions(names)
  if #names > 0 then redis.call('SADD', '__INDEX_FUNCTIONS__', unpack(names)) end
end
