-- queue_push: LPUSH payloads onto a queue and give each an id, in one atomic step.
-- KEYS[1] waiting list   KEYS[2] claim list
-- KEYS[3] ids hash: 'taken' -> list items queue_pop has taken so far; <position> -> the id push
--         gave the message at that position (1 + taken is the next one queue_pop takes)
-- KEYS[4] id counter
-- ARGV    the payloads, oldest first
-- Returns the ids, in ARGV order.
-- Positions count every message that entered the list, raw LPUSHes included: the list and the
-- claim list hold positions taken+1 .. taken+LLEN, so ours come right after them.
local n = #ARGV
local last = redis.call('INCRBY', KEYS[4], n)
local base = tonumber(redis.call('HGET', KEYS[3], 'taken') or '0')
  + redis.call('LLEN', KEYS[2]) + redis.call('LLEN', KEYS[1])
local ids, fields = {}, {}
for i = 1, n do
  ids[i] = string.format('%d', last - n + i)
  fields[2 * i - 1], fields[2 * i] = string.format('%d', base + i), ids[i]
end
for i = 1, n, 1000 do
  local j = math.min(i + 999, n)
  redis.call('LPUSH', KEYS[1], unpack(ARGV, i, j))
  redis.call('HSET', KEYS[3], unpack(fields, 2 * i - 1, 2 * j))
end
return ids
