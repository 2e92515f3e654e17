-- Record one delivered vpush transfer in its metrics hash ({count, sum, max} of milliseconds).
-- KEYS[1] the metrics hash. ARGV[1] messages delivered, ARGV[2] the transfer's time in ms,
-- ARGV[3] 1 if the remote already had it (a retried push that had landed), else 0.
redis.call('HINCRBY', KEYS[1], 'count', 1)
redis.call('HINCRBY', KEYS[1], 'messages', ARGV[1])
redis.call('HINCRBYFLOAT', KEYS[1], 'sum', ARGV[2])
redis.call('HINCRBY', KEYS[1], 'duplicates', ARGV[3])
redis.call('HSET', KEYS[1], 'attempt', 0)
local max = tonumber(redis.call('HGET', KEYS[1], 'max') or '0')
if tonumber(ARGV[2]) > max then
  redis.call('HSET', KEYS[1], 'max', ARGV[2])
end
return 1
