-- Return an instance's pending messages to the input, oldest to be popped first.
-- KEYS[1] the registry hash of instances with pending lists, KEYS[2] that instance's pending
-- list, KEYS[3] the input list, KEYS[4] the hash of when each instance was first found dead (ms)
-- ARGV[1] that instance's id (its field in the registry and in KEYS[4])
-- ARGV[2] grace (ms): given when the instance was found dead (its lifecycle hash is gone). A
--   deleted hash can outlive its process's last claim by a moment (it notices at its next
--   renewal), so its registry entry is kept, and its list recovered on every pass, until it has
--   been dead for `grace`; a list refilled meanwhile is not orphaned. Absent: the instance
--   returns its own list as it stops, and its entry goes at once.
-- Returns how many messages were returned.
local count = 0
while redis.call('LMOVE', KEYS[2], KEYS[3], 'LEFT', 'RIGHT') do
  count = count + 1
end
local grace = tonumber(ARGV[2] or '')
local forget = grace == nil
if grace ~= nil then
  local clock = redis.call('TIME')
  local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
  local since = tonumber(redis.call('HGET', KEYS[4], ARGV[1]) or '')
  if since == nil then
    redis.call('HSET', KEYS[4], ARGV[1], string.format('%d', now))
  else
    forget = now - since >= grace
  end
end
if forget then
  redis.call('HDEL', KEYS[1], ARGV[1])
  redis.call('HDEL', KEYS[4], ARGV[1])
end
return count
