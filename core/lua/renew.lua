-- Renew the leases of one worker's running jobs; returns 1 (still held) or 0 (lost) per job.
-- KEYS, three per job: lease, holder, result. ARGV: lease_ms, then per job: token.
-- A lease that lapsed (a Redis outage, a stalled loop) is taken back only if nobody claimed the job since and
-- its claim has not ended: the job's holder is still this claim's token (every claim sets it, every outcome of
-- the claim clears it), and the job has no result.
local held = {}
for i = 1, #KEYS / 3 do
  local lease, holder, result = KEYS[3 * i - 2], KEYS[3 * i - 1], KEYS[3 * i]
  local token = ARGV[i + 1]
  local current = redis.call('GET', lease)
  if held_by(current, token) then
    redis.call('PEXPIRE', lease, ARGV[1])
    held[i] = 1
  elseif not current and redis.call('GET', holder) == token and redis.call('EXISTS', result) == 0 then
    redis.call('SET', lease, token .. ABORT_MARK, 'PX', ARGV[1]) -- an abort may have come while it lapsed
    held[i] = 1
  else
    held[i] = 0
  end
end
return held
