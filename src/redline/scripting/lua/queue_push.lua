-- queue_push: LPUSH payloads onto a queue and give each an id, in one atomic step.
-- KEYS[1] waiting list   KEYS[2] claim list
-- KEYS[3] ids hash: 'taken' -> list items queue_pop has taken so far; <position> -> '<id>:<n>':
--         push gave the n messages from that position on the ids id, id+1, ... ('<id>': n = 1;
--         1 + taken is the next position queue_pop takes; 'taken' is written first when this
--         makes the hash, see below)
-- KEYS[4] id counter
-- ARGV    the payloads, oldest first
-- Returns the ids, in ARGV order.
-- Positions count every message that entered the list, raw LPUSHes included: the list and the
-- claim list hold positions taken+1 .. taken+LLEN, so ours come right after them. One field per
-- call (per 1,000 payloads), whatever the number of payloads.
-- LPUSH answers the list's length, so its own length is not asked for (one LLEN less).
local n = #ARGV
local last = redis.call('INCRBY', KEYS[4], n)
local taken = redis.call('HGET', KEYS[3], 'taken')
local base = tonumber(taken or '0') + redis.call('LLEN', KEYS[2])
local ids = {}
for i = 1, n do ids[i] = string.format('%d', last - n + i) end
for i = 1, n, 1000 do
  local j = math.min(i + 999, n)
  local length = redis.call('LPUSH', KEYS[1], unpack(ARGV, i, j))
  local run = ids[i]
  if j > i then run = run .. ':' .. string.format('%d', j - i + 1) end
  local field = string.format('%d', base + length - (j - i))
  if taken then
    redis.call('HSET', KEYS[3], field, run)
  else  -- a new ids hash gets 'taken' first: queue_pop reads it on every call, and a small
    redis.call('HSET', KEYS[3], 'taken', '0', field, run)  -- hash (a listpack) is scanned
    taken = '0'                                            -- from the front for a field
  end
end
return ids
