-- Trim the job index of the given functions (run by a worker's heartbeat): ended jobs whose records expired
-- (ended before now - keep), and the oldest beyond ARGV[2] per final state.
-- ARGV: now_ms, max per state, then per function: function, keep_ms|-, dead letter keep_ms|-.
local now, most = tonumber(ARGV[1]), tonumber(ARGV[2])
for i = 3, #ARGV, 3 do
  local key = index_key(ARGV[i])
  for _, state in ipairs({'complete', 'failed', 'dead', 'aborted'}) do
    local low = INDEX_STATES[state] * INDEX_BAND
    local high = low + INDEX_BAND - 1
    local keep = ARGV[i + 1]
    if state == 'dead' then keep = (keep == '-' or ARGV[i + 2] == '-') and '-' or math.max(keep, ARGV[i + 2]) end
    if keep ~= '-' then redis.call('ZREMRANGEBYSCORE', key, low, '(' .. (low + now - tonumber(keep))) end
    local over = redis.call('ZCOUNT', key, low, high) - most
    if over > 0 then
      local cut = redis.call('ZRANGEBYSCORE', key, low, high, 'LIMIT', over - 1, 1)
      redis.call('ZREMRANGEBYSCORE', key, low, redis.call('ZSCORE', key, cut[1]))
    end
  end
end
return 1
