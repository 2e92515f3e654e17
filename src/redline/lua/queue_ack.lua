-- queue_ack: acknowledge deliveries whose fencing token (delivery count) is still current.
-- A message recovered but not yet redelivered is still acknowledged (nobody else holds it); one
-- redelivered since (its count moved on) or dead-lettered is refused.
-- KEYS[1] inflight zset   KEYS[2] delayed zset   KEYS[3] payloads hash   KEYS[4] deliveries hash
-- KEYS[5] since hash      KEYS[6] reasons hash
-- ARGV    id1, token1, id2, token2, ...
-- Returns the ids acknowledged.
local acked = {}
for i = 1, #ARGV, 2 do
  local id = ARGV[i]
  if redis.call('HGET', KEYS[4], id) == ARGV[i + 1]
    and (redis.call('ZREM', KEYS[1], id) == 1 or redis.call('ZREM', KEYS[2], id) == 1) then
    acked[#acked + 1] = id
  end
end
for i = 1, #acked, 1000 do
  local chunk = {unpack(acked, i, math.min(i + 999, #acked))}
  for k = 3, 6 do redis.call('HDEL', KEYS[k], unpack(chunk)) end
end
return acked
