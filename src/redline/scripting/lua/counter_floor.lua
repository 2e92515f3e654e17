-- Raise a counter to at least a value: an instance that registers again, under its own id, on a
-- server that lost its data, so that the ids handed out after it do not collide with it.
-- KEYS[1] the counter (<ns>:id)
-- ARGV[1] the least value it may hold
-- Returns the counter's value after the call.
local least = tonumber(ARGV[1])
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if current < least then
  redis.call('SET', KEYS[1], least)
  return least
end
return current
