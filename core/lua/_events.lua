-- Job events (core/events.py): a change of a job's state is appended to the platform-wide stream and, under the
-- same entry id, to the job's own bounded stream. `data` is a JSON object text. Returns the entry id.
local function emit_event(job_id, fn, name, data)
  local id = redis.call('XADD', '__EVENTS_STREAM__', 'MAXLEN', '~', __EVENTS_MAX__, '*',
    'job_id', job_id, 'function', fn, 'event', name, 'data', data)
  -- pcall: a job stream ahead of the global one (a clock stepped back, a deleted global stream) loses this
  -- entry rather than the state change around it.
  redis.pcall('XADD', '__JOB_STREAM_PREFIX__' .. job_id, 'MAXLEN', '~', __JOB_EVENTS_MAX__, id,
    'job_id', job_id, 'function', fn, 'event', name, 'data', data)
  return id
end

-- How long the events of a job that ended keeping no record are kept (ms).
local UNSTORED_EVENTS_PX = '__UNSTORED_EVENTS_PX__'

-- The job's events live as long as its records: px in ms, '-' for ever.
local function expire_events(job_id, px)
  if px == '-' then
    redis.call('PERSIST', '__JOB_STREAM_PREFIX__' .. job_id)
  else
    redis.call('PEXPIRE', '__JOB_STREAM_PREFIX__' .. job_id, px)
  end
end
