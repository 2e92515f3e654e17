-- queue_recover: move up to ARGV[1] in-flight messages whose lease expired (or, when ARGV[2] >= 0,
-- delivered at least ARGV[2] ms ago) back to the delayed set, due now; a message that has had
-- ARGV[3] deliveries goes to the dead letters instead (and the oldest dead letters past the
-- queue's retention are dropped, see _retention.lua). `pop` recovers expired leases itself; this
-- is for operators (`redline queue recover`) and for giving back work that is merely slow.
-- With consumer names after ARGV[3], it moves instead the messages of the batches they hold
-- (whatever their lease; ARGV[2] is then ignored): what consumers that are gone held (a
-- message extended apart from its batch has left it, and its consumer is not known).
-- KEYS[1] inflight zset   KEYS[2] delayed zset   KEYS[3] dead zset   KEYS[4] deliveries hash
-- KEYS[5] since hash      KEYS[6] reasons hash   KEYS[7] payloads hash   KEYS[8] retention hash
-- KEYS[9] batches hash    KEYS[10] batched zset (_batch.lua)
-- ARGV[1] count   ARGV[2] elapsed (ms, or -1 for "lease expired")   ARGV[3] max deliveries
-- ARGV[4..] consumers (optional)
-- Returns {requeued, dead}.
-- include _retention.lua
-- include _batch.lua
local count, elapsed, max = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local Q = {
  inflight = KEYS[1], deliveries = KEYS[4], since = KEYS[5], payloads = KEYS[7],
  batches = KEYS[9], batched = KEYS[10],
}
local holders = nil
if #ARGV > 3 then
  holders = {}
  for i = 4, #ARGV do holders[ARGV[i]] = true end
end
local ids, counts = leases_take(Q, now, count, elapsed, holders)
local requeued, dead, why = 0, 0, 'lease expired'
if holders then why = 'its consumer is gone' end
for i, id in ipairs(ids) do
  if counts[i] >= max then
    redis.call('ZADD', KEYS[3], now, id)
    redis.call('HSET', KEYS[6], id, 'max deliveries (' .. ARGV[3] .. ') reached: ' .. why)
    dead = dead + 1
  else
    redis.call('ZADD', KEYS[2], now, id)
    requeued = requeued + 1
  end
end
if dead > 0 then retention_trim(KEYS[3], KEYS[8], 'dropped', {KEYS[7], KEYS[4], KEYS[6]}, now) end
return {requeued, dead}
