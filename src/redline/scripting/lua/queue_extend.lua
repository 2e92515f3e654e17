-- queue_extend: renew the leases of deliveries still held (in flight, token current). A message
-- leased with its batch gets a lease of its own first (_batch.lua).
-- KEYS[1] inflight zset: id or batch -> lease deadline (ms)   KEYS[2] deliveries hash: id -> count
-- KEYS[3] payloads hash   KEYS[4] since hash   KEYS[5] batches hash   KEYS[6] batched zset
-- ARGV[1] lease (ms), then id1, token1, id2, token2, ...
-- Returns one flag per pair, in order: 1 when its lease now ends ARGV[1] ms from the server's now,
-- 0 when it is no longer held (stale token, settled or recovered).
-- include _batch.lua
local Q = {
  inflight = KEYS[1], deliveries = KEYS[2], payloads = KEYS[3], since = KEYS[4],
  batches = KEYS[5], batched = KEYS[6],
}
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local deadline = now + tonumber(ARGV[1])
local ids, tokens = {}, {}
for i = 2, #ARGV, 2 do ids[#ids + 1], tokens[#tokens + 1] = ARGV[i], ARGV[i + 1] end
batch_detach(Q, ids, tokens)
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
