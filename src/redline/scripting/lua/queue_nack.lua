-- queue_nack: give a delivery back: to the delayed set (due after ARGV[3] ms), or to the dead
-- letters when ARGV[6] is 'dead' or the message has had ARGV[4] deliveries already (then the
-- oldest dead letters past the queue's retention are dropped, see _retention.lua).
-- KEYS[1] inflight zset   KEYS[2] delayed zset   KEYS[3] dead zset: id -> died at (ms)
-- KEYS[4] deliveries hash KEYS[5] since hash     KEYS[6] reasons hash: id -> last reason
-- KEYS[7] payloads hash   KEYS[8] retention hash
-- KEYS[9] batches hash    KEYS[10] batched zset (_batch.lua: a message leased with its batch
--         gets a lease of its own first)
-- ARGV[1] id   ARGV[2] token   ARGV[3] delay (ms)   ARGV[4] max deliveries   ARGV[5] reason
-- ARGV[6] 'retry' or 'dead'
-- Returns 0 when refused (stale token or not in flight), 1 when delayed, 2 when dead-lettered.
-- include _retention.lua
-- include _batch.lua
local id = ARGV[1]
batch_detach({
  inflight = KEYS[1], deliveries = KEYS[4], since = KEYS[5], payloads = KEYS[7],
  batches = KEYS[9], batched = KEYS[10],
}, {id}, {ARGV[2]})
local count = redis.call('HGET', KEYS[4], id)
if count ~= ARGV[2] or redis.call('ZREM', KEYS[1], id) == 0 then return 0 end
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
redis.call('HDEL', KEYS[5], id)
local reason = ARGV[5]
if ARGV[6] ~= 'dead' and tonumber(count) >= tonumber(ARGV[4]) then
  reason = 'max deliveries (' .. ARGV[4] .. ') reached: ' .. reason
end
if reason ~= '' then redis.call('HSET', KEYS[6], id, reason) end
if ARGV[6] == 'dead' or tonumber(count) >= tonumber(ARGV[4]) then
  redis.call('ZADD', KEYS[3], now, id)
  retention_trim(KEYS[3], KEYS[8], 'dropped', {KEYS[7], KEYS[4], KEYS[6]}, now)
  return 2
end
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[3]), id)
return 1
