-- Add delivered vpush transfers to the metrics hash: {count, sum, max} of milliseconds per
-- transfer, plus the messages moved and the pushes the remote already had.
-- KEYS[1] the metrics hash. ARGV[1] transfers, ARGV[2] messages, ARGV[3] sum of milliseconds,
-- ARGV[4] the longest transfer in milliseconds, ARGV[5] pushes found already on the remote.
redis.call('HINCRBY', KEYS[1], 'count', ARGV[1])
redis.call('HINCRBY', KEYS[1], 'messages', ARGV[2])
redis.call('HINCRBYFLOAT', KEYS[1], 'sum', ARGV[3])
redis.call('HINCRBY', KEYS[1], 'duplicates', ARGV[5])
redis.call('HSET', KEYS[1], 'attempt', 0)
local max = tonumber(redis.call('HGET', KEYS[1], 'max') or '0')
if tonumber(ARGV[4]) > max then
  redis.call('HSET', KEYS[1], 'max', ARGV[4])
end
return 1
