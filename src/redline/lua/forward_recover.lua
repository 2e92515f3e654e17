-- Return a (dead or stopping) instance's pending messages to the input, oldest to be popped first.
-- KEYS[1] the registry hash of instances with pending lists, KEYS[2] that instance's pending
-- list, KEYS[3] the input list
-- ARGV[1] that instance's id (its field in the registry)
-- Returns how many messages were returned.
local count = 0
while redis.call('LMOVE', KEYS[2], KEYS[3], 'LEFT', 'RIGHT') do
  count = count + 1
end
redis.call('HDEL', KEYS[1], ARGV[1])
return count
