-- Give back a finished job's concurrency slot and wake the first job still waiting for one
-- (due now in its delayed set, if it waits there with the delivery count it was put back with).
-- KEYS[1] concurrency slots zset   KEYS[2] concurrency waiters list ("<priority>:<id>:<count>")
-- KEYS[3..12] the delayed zsets of priorities 0-9   KEYS[13..22] their deliveries hashes
-- ARGV[1] the finished job's id
-- Returns 1 when a waiting job was woken, else 0.
redis.call('ZREM', KEYS[1], ARGV[1])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
for _ = 1, 100 do
  local entry = redis.call('LPOP', KEYS[2])
  if not entry then return 0 end
  local p, id, count = string.match(entry, '^(%d):([^:]+):(%d+)$')
  if p then
    local delayed, counts = KEYS[3 + tonumber(p)], KEYS[13 + tonumber(p)]
    if redis.call('HGET', counts, id) == count and redis.call('ZSCORE', delayed, id) then
      redis.call('ZADD', delayed, now, id)
      return 1
    end
  end
end
return 0
