-- queue_extend: renew the leases of deliveries still held (in flight, token current).
-- KEYS[1] inflight zset: id -> lease deadline (ms)   KEYS[2] deliveries hash: id -> count
-- ARGV[1] lease (ms), then id1, token1, id2, token2, ...
-- Returns one flag per pair, in order: 1 when its lease now ends ARGV[1] ms from the server's now,
-- 0 when it is no longer held (stale token, settled or recovered).
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local deadline = now + tonumber(ARGV[1])
local kept = {}
for i = 2, #ARGV, 2 do
  local id = ARGV[i]
  kept[#kept + 1] = 0
  if redis.call('HGET', KEYS[2], id) == ARGV[i + 1] and redis.call('ZSCORE', KEYS[1], id) then
    redis.call('ZADD', KEYS[1], 'XX', deadline, id)
    kept[#kept] = 1
  end
end
return kept
