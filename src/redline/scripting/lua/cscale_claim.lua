-- Record start claims, but only while the caller still holds the service's lease.
-- KEYS[1] the lease ({ns}:cscale:lock), KEYS[2] the claims ({ns}:cscale:starting)
-- ARGV[1] the lease token, ARGV[2] claim lifetime in ms, ARGV[3..] claim names
-- Returns the number of claims recorded, or -1 when the lease is no longer the caller's.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return -1
end
local now = redis.call('TIME')
local deadline = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000) + tonumber(ARGV[2])
for i = 3, #ARGV do
  redis.call('ZADD', KEYS[2], deadline, ARGV[i])
end
return #ARGV - 2
