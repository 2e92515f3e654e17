-- queue_requeue: give dead letters another life: due now, with their delivery count reset.
-- KEYS[1] dead zset   KEYS[2] delayed zset   KEYS[3] deliveries hash   KEYS[4] reasons hash
-- ARGV    the ids
-- Returns the number of dead letters requeued (ids not dead are ignored).
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local moved = 0
for _, id in ipairs(ARGV) do
  if redis.call('ZREM', KEYS[1], id) == 1 then
    redis.call('ZADD', KEYS[2], now, id)
    redis.call('HSET', KEYS[3], id, 0)
    redis.call('HDEL', KEYS[4], id)
    moved = moved + 1
  end
end
return moved
