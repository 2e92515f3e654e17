-- Drop the expired start claims of a service and list the others.
-- KEYS[1] the claims ({ns}:cscale:starting)
-- Returns the names of the claims whose deadline (server time, ms) has not passed.
local now = redis.call('TIME')
local ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ms)
return redis.call('ZRANGE', KEYS[1], 0, -1)
