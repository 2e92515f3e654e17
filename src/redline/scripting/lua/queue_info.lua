-- queue_info: the counts of one queue, read atomically, and its dead-letter retention.
-- KEYS[1] waiting list   KEYS[2] claim list   KEYS[3] inflight zset   KEYS[4] delayed zset
-- KEYS[5] dead zset      KEYS[6] retention hash (_retention.lua)
-- KEYS[7] batches hash (_batch.lua)
-- Returns {waiting, inflight, delayed, dead, expired, dropped, records_dropped, max, age}:
-- expired counts in-flight messages whose lease has ended (the next pop gives them back);
-- dropped the dead letters and records_dropped the job failure records that retention dropped;
-- max (entries) and age (ms) the retention in force.
-- include _retention.lua
-- include _batch.lua
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local max, age = retention_policy(KEYS[6])
local dropped = redis.call('HMGET', KEYS[6], 'dropped', 'records_dropped')
-- The inflight zset has a member per batch and one per message with a lease of its own.
local expired = 0
for _, m in ipairs(redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now)) do
  if batch_is(m) then
    expired = expired + #batch_load({batches = KEYS[7]}, m)
  else
    expired = expired + 1
  end
end
return {
  redis.call('LLEN', KEYS[1]) + redis.call('LLEN', KEYS[2]),
  redis.call('ZCARD', KEYS[3]) + tonumber(redis.call('HGET', KEYS[7], 'extra') or 0),
  redis.call('ZCARD', KEYS[4]),
  redis.call('ZCARD', KEYS[5]),
  expired,
  tonumber(dropped[1] or 0),
  tonumber(dropped[2] or 0),
  max,
  age,
}
