-- Renew the leases of one worker's running jobs; returns 1 (still held) or 0 (lost) per job.
-- KEYS, four per job: lease, try counter, job, result. ARGV: lease_ms, then per job: token, try.
-- A lease that lapsed (a Redis outage, a stalled loop) is taken back only if nobody claimed the job since:
-- its try counter is still this claim's, and the job is neither ended nor gone.
local held = {}
for i = 1, #KEYS / 4 do
  local lease, tries, job, result = KEYS[4 * i - 3], KEYS[4 * i - 2], KEYS[4 * i - 1], KEYS[4 * i]
  local token, try = ARGV[2 * i], ARGV[2 * i + 1]
  local current = redis.call('GET', lease)
  if current == token then
    redis.call('PEXPIRE', lease, ARGV[1])
    held[i] = 1
  elseif not current and redis.call('GET', tries) == try and redis.call('EXISTS', job) == 1
      and redis.call('EXISTS', result) == 0 then
    redis.call('SET', lease, token, 'PX', ARGV[1])
    held[i] = 1
  else
    held[i] = 0
  end
end
return held
