-- Add accumulated observations to one metrics hash.
-- KEYS[1] the metrics hash (<ns>:metrics:<name>)
-- ARGV[1] the largest value observed ("" when none), then pairs: field, increment
-- Returns the hash's max after the update (or false when it has none).
for i = 2, #ARGV, 2 do
  redis.call('HINCRBY', KEYS[1], ARGV[i], ARGV[i + 1])
end
if ARGV[1] ~= '' then
  local max = tonumber(redis.call('HGET', KEYS[1], 'max') or '')
  if max == nil or tonumber(ARGV[1]) > max then
    redis.call('HSET', KEYS[1], 'max', ARGV[1])
  end
end
return redis.call('HGET', KEYS[1], 'max')
