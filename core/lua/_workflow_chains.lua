-- Chains (core/chains.py): each job of a chain has a links hash. A parent's `children` is a JSON list of
-- `[id, function, result argument]`; a child also has `parent`, `function`, `kwargs`, `arg` and `status`
-- (pending until its parent ends, then enqueued or not_run with a `reason`). Only scripts handed chain work
-- by their caller touch these: a job outside any chain costs nothing here.
local CHAIN_PREFIX = '__CHAIN_PREFIX__'

-- A job's links live as long as its records: px in ms, '-' for ever.
local function chain_expire(job_id, px)
  if px == '-' then
    redis.call('PERSIST', CHAIN_PREFIX .. job_id)
  else
    redis.call('PEXPIRE', CHAIN_PREFIX .. job_id, px)
  end
end

-- At enqueue: the links of a parent and all its descendants (rows of core.chains.records); each child is
-- published as pending. They live as long as the parent's payload (px).
local function chain_write(rows_json, px)
  for _, row in ipairs(cjson.decode(rows_json)) do
    local key = CHAIN_PREFIX .. row[1]
    if row[2] == '' then
      redis.call('HSET', key, 'children', row[6])
    else
      redis.call('HSET', key, 'parent', row[2], 'function', row[3], 'kwargs', row[4], 'arg', row[5],
        'children', row[6], 'status', 'pending')
      emit_event(row[1], row[3], 'pending', cjson.encode({parent = row[2]}))
      expire_events(row[1], px)
    end
    redis.call('PEXPIRE', key, px)
  end
end

-- The parent failed for good, died or was aborted: every pending descendant ends as not run, with the reason,
-- published, its links and events kept as long as the parent's records (px).
local function chain_end(job_id, reason, px)
  local todo, at = {job_id}, 1
  while at <= #todo do
    local id = todo[at]
    at = at + 1
    local children = redis.call('HGET', CHAIN_PREFIX .. id, 'children')
    if children then
      for _, link in ipairs(cjson.decode(children)) do
        local child = link[1]
        if redis.call('HGET', CHAIN_PREFIX .. child, 'status') == 'pending' then
          redis.call('HSET', CHAIN_PREFIX .. child, 'status', 'not_run', 'reason', reason)
          emit_event(child, link[2], 'not_run', cjson.encode({parent = id, reason = reason}))
          expire_events(child, px)
          chain_expire(child, px)
          todo[#todo + 1] = child
        end
      end
    end
  end
end

-- The parent succeeded: enqueue its children (ARGV from `first` on: id, function, payload, expires ms per
-- child), due now, published as queued with their parent, indexed and counted like any enqueue. A child whose
-- id exists (it cannot, short of a hand-made id) is left alone. Returns how many were written.
local function chain_run(parent, queue, first, now)
  local written, names = 0, {}
  for at = first, #ARGV, 4 do
    local id, fn, payload, px = ARGV[at], ARGV[at + 1], ARGV[at + 2], ARGV[at + 3]
    local key = CHAIN_PREFIX .. id
    if redis.call('HGET', key, 'status') == 'pending'
      and redis.call('SET', '__JOB_PREFIX__' .. id, payload, 'NX', 'PX', px) then
      redis.call('ZADD', queue, now, id)
      redis.call('HSET', key, 'status', 'enqueued')
      redis.call('PEXPIRE', key, px)
      emit_event(id, fn, 'queued', '{"scheduled_at":' .. now .. ',"enqueued_at":' .. now .. ',"parent":'
        .. cjson.encode(parent) .. '}')
      expire_events(id, px)
      index_set(id, fn, 'waiting', now)
      count_metric('enqueued|' .. fn, 1)
      names[#names + 1] = fn
      written = written + 1
    end
  end
  index_functions(names)
  return written
end
