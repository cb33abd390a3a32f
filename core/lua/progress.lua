-- Store how far a running job is and publish it (progress), in one call.
-- KEYS: progress key. ARGV: job_id, function, progress record, ttl_s, event data (JSON).
redis.call('SET', KEYS[1], ARGV[3], 'EX', ARGV[4])
emit_event(ARGV[1], ARGV[2], 'progress', ARGV[5])
return 1
