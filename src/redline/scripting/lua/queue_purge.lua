-- queue_purge: drop every message waiting or delayed; in-flight messages and dead letters stay.
-- KEYS[1] waiting list   KEYS[2] claim list   KEYS[3] ids hash   KEYS[4] delayed zset
-- KEYS[5] payloads hash  KEYS[6] deliveries hash   KEYS[7] reasons hash
-- Returns the number of messages dropped.
local dropped = redis.call('LLEN', KEYS[1]) + redis.call('LLEN', KEYS[2])
local delayed = redis.call('ZRANGE', KEYS[4], 0, -1)
for i = 1, #delayed, 1000 do
  local chunk = {unpack(delayed, i, math.min(i + 999, #delayed))}
  for k = 5, 7 do redis.call('HDEL', KEYS[k], unpack(chunk)) end
end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4])
return dropped + #delayed
