-- queue_delete: remove dead letters for good.
-- KEYS[1] dead zset   KEYS[2] payloads hash   KEYS[3] deliveries hash   KEYS[4] reasons hash
-- ARGV    the ids
-- Returns the number of dead letters deleted (ids not dead are ignored).
local deleted = 0
for _, id in ipairs(ARGV) do
  if redis.call('ZREM', KEYS[1], id) == 1 then
    redis.call('HDEL', KEYS[2], id)
    redis.call('HDEL', KEYS[3], id)
    redis.call('HDEL', KEYS[4], id)
    deleted = deleted + 1
  end
end
return deleted
