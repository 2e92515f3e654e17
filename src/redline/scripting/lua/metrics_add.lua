-- Add accumulated observations to one metrics hash, and set its latest values.
-- KEYS[1] the metrics hash (<ns>:metrics:<name>)
-- ARGV[1] the largest value observed ("" when none), ARGV[2] the number N of increments,
-- then N pairs field, increment (HINCRBY), then pairs field, value (HSET: gauges and notes
-- such as a last error, where the latest write wins)
-- Returns the hash's max after the update (or false when it has none).
local last = 2 + 2 * tonumber(ARGV[2])
for i = 3, last, 2 do
  redis.call('HINCRBY', KEYS[1], ARGV[i], ARGV[i + 1])
end
for i = last + 1, #ARGV, 2 do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
end
if ARGV[1] ~= '' then
  local max = tonumber(redis.call('HGET', KEYS[1], 'max') or '')
  if max == nil or tonumber(ARGV[1]) > max then
    redis.call('HSET', KEYS[1], 'max', ARGV[1])
  end
end
return redis.call('HGET', KEYS[1], 'max')
