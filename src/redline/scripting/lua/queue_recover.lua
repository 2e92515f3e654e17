-- queue_recover: move up to ARGV[1] in-flight messages whose lease expired (or, when ARGV[2] >= 0,
-- delivered at least ARGV[2] ms ago) back to the delayed set, due now; a message that has had
-- ARGV[3] deliveries goes to the dead letters instead (and the oldest dead letters past the
-- queue's retention are dropped, see _retention.lua). `pop` recovers expired leases itself; this
-- is for operators (`redline queue recover`) and for giving back work that is merely slow.
-- KEYS[1] inflight zset   KEYS[2] delayed zset   KEYS[3] dead zset   KEYS[4] deliveries hash
-- KEYS[5] since hash      KEYS[6] reasons hash   KEYS[7] payloads hash   KEYS[8] retention hash
-- ARGV[1] count   ARGV[2] elapsed (ms, or -1 for "lease expired")   ARGV[3] max deliveries
-- Returns {requeued, dead}.
-- include _retention.lua
local count, elapsed, max = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local ids = {}
if elapsed < 0 then
  ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, count)
else
  for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
    if #ids >= count then break end
    local since = tonumber(redis.call('HGET', KEYS[5], id) or 0)
    if since <= now - elapsed then ids[#ids + 1] = id end
  end
end
local requeued, dead = 0, 0
for _, id in ipairs(ids) do
  redis.call('ZREM', KEYS[1], id)
  redis.call('HDEL', KEYS[5], id)
  local n = tonumber(redis.call('HGET', KEYS[4], id) or 0)
  if n >= max then
    redis.call('ZADD', KEYS[3], now, id)
    redis.call('HSET', KEYS[6], id, 'max deliveries (' .. ARGV[3] .. ') reached: lease expired')
    dead = dead + 1
  else
    redis.call('ZADD', KEYS[2], now, id)
    requeued = requeued + 1
  end
end
if dead > 0 then retention_trim(KEYS[3], KEYS[8], 'dropped', {KEYS[7], KEYS[4], KEYS[6]}, now) end
return {requeued, dead}
