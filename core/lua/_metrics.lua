-- Cluster-wide job metrics (core/job_metrics.py) and per-queue throughput (core/keys.py).

local function count_metric(field, n)
  redis.call('HINCRBY', '__METRICS_COUNTS__', field, n)
end

-- Metrics a worker gathered (core/worker/metrics.py), handed over with one of its finish calls: lines of
-- `<kind>\t<field>\t<n>`, kind C (a counter), H (a histogram bucket), F (a histogram sum), T (jobs ended in
-- the throughput bucket `<queue>:<bucket number>`).
local function apply_metric_deltas(text)
  for kind, field, n in string.gmatch(text, '(%u)\t([^\t\n]+)\t([^\n]+)\n') do
    if kind == 'C' then
      redis.call('HINCRBY', '__METRICS_COUNTS__', field, n)
    elseif kind == 'H' then
      redis.call('HINCRBY', '__METRICS_HIST__', field, n)
    elseif kind == 'F' then
      redis.call('HINCRBYFLOAT', '__METRICS_HIST__', field, n)
    elseif kind == 'T' then
      local key = '__THROUGHPUT_PREFIX__' .. field
      if redis.call('INCRBY', key, n) == tonumber(n) then redis.call('EXPIRE', key, __THROUGHPUT_TTL_S__) end
    end
  end
end
