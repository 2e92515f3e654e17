-- Take or renew an active slot of a service, at most ARGV[3] of them.
-- KEYS[1] the active slots ({ns}:cscale:active: member instance id, score lease deadline ms)
-- ARGV[1] the instance id, ARGV[2] lease in ms, ARGV[3] the limit (desired active replicas),
-- ARGV[4..] ids the caller found dead (their lifecycle hash is gone): their slots are freed.
-- Returns 1 active (slot taken or renewed), 0 no free slot (stay standby),
-- -1 the caller held a slot but is among the newest beyond the limit (it gives it up).
local now = redis.call('TIME')
local ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ms)
for i = 4, #ARGV do
  redis.call('ZREM', KEYS[1], ARGV[i])
end
local limit = tonumber(ARGV[3])
local mine = tonumber(ARGV[1])
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  local older = 0
  for _, member in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
    if tonumber(member) < mine then
      older = older + 1
    end
  end
  if older >= limit then
    redis.call('ZREM', KEYS[1], ARGV[1])
    return -1
  end
elseif redis.call('ZCARD', KEYS[1]) >= limit then
  return 0
end
redis.call('ZADD', KEYS[1], ms + tonumber(ARGV[2]), ARGV[1])
return 1
