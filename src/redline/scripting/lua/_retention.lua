-- _retention: included (`-- include _retention.lua`) by the scripts that add dead letters or
-- job failure records, so that each one's trimming is atomic with the adding.
-- The retention hash of a queue ({q}:retention) holds its policy, `max` (entries kept) and
-- `age` (ms kept), both optional (defaults: 10,000 entries, 180 days), and the counters of what
-- was dropped: `dropped` (dead letters) and `records_dropped` (job failure records).
local function retention_policy(retention)
  local policy = redis.call('HMGET', retention, 'max', 'age')
  return tonumber(policy[1]) or 10000, tonumber(policy[2]) or 15552000000
end

-- Drops the oldest members of `zset` (scored by the time they were added, in ms) past the policy
-- of `retention`, and their fields in each hash of `hashes`; counts them in field `counter`.
-- Returns how many were dropped.
local function retention_trim(zset, retention, counter, hashes, now)
  local max, age = retention_policy(retention)
  local over = redis.call('ZCARD', zset) - max
  local old = redis.call('ZCOUNT', zset, '-inf', string.format('(%d', now - age))
  if old > over then over = old end
  if over <= 0 then return 0 end
  local ids = redis.call('ZRANGE', zset, 0, over - 1)
  for i = 1, #ids, 1000 do
    local chunk = {unpack(ids, i, math.min(i + 999, #ids))}
    redis.call('ZREM', zset, unpack(chunk))
    for _, hash in ipairs(hashes) do redis.call('HDEL', hash, unpack(chunk)) end
  end
  redis.call('HINCRBY', retention, counter, #ids)
  return #ids
end
