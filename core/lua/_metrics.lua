-- Cluster-wide job metrics (core/job_metrics.py) and per-queue throughput (core/keys.py).
local METRIC_BUCKETS = __METRICS_BUCKETS__

local function count_metric(field, n)
  redis.call('HINCRBY', '__METRICS_COUNTS__', field, n)
end

-- One observation of `name` (duration, queue_wait): its bucket index and seconds.
local function observe_metric(name, fn, bucket, seconds)
  redis.call('HINCRBY', '__METRICS_HIST__', name .. '|' .. fn .. '|' .. bucket, 1)
  redis.call('HINCRBYFLOAT', '__METRICS_HIST__', name .. '|' .. fn .. '|sum', seconds)
end

-- Many observations of `name`: counts per bucket index, and their sum in seconds.
local function observe_metric_counts(name, fn, counts, seconds)
  for bucket, n in pairs(counts) do
    redis.call('HINCRBY', '__METRICS_HIST__', name .. '|' .. fn .. '|' .. bucket, n)
  end
  redis.call('HINCRBYFLOAT', '__METRICS_HIST__', name .. '|' .. fn .. '|sum', seconds)
end

-- The bucket index of an observation, as job_metrics.bucket_index (0-based; #METRIC_BUCKETS is +Inf).
local function metric_bucket(seconds)
  for i = 1, #METRIC_BUCKETS do
    if seconds <= METRIC_BUCKETS[i] then return i - 1 end
  end
  return #METRIC_BUCKETS
end

-- A job of `queue` finished at now_ms: counted in the queue's current throughput bucket.
local function count_finished(queue, now_ms)
  local key = '__THROUGHPUT_PREFIX__' .. queue .. ':' .. math.floor(now_ms / __THROUGHPUT_BUCKET_MS__)
  if redis.call('INCR', key) == 1 then redis.call('EXPIRE', key, __THROUGHPUT_TTL_S__) end
end
