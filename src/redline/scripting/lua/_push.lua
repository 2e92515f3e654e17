-- _push.lua: the push of queue_push and queue_push_run (`-- include _push.lua`): LPUSH the
-- payloads onto a queue and record their ids, in one atomic step. Defined once at the library's
-- top level (it takes the keys and payloads as arguments). The keys, in order: waiting list,
-- claim list, ids hash (see queue_push), id counter.

-- Pushes `payloads` (oldest first) onto the queue of `keys`; returns the first id the push gave
-- and how many: the ids are first, first + 1, ... (one INCRBY numbers them all).
-- Positions count every message that entered the list, raw LPUSHes included: the list and the
-- claim list hold positions taken+1 .. taken+LLEN, so ours come right after them. One field per
-- call (per 1,000 payloads), whatever the number of payloads.
-- LPUSH answers the list's length, so its own length is not asked for (one LLEN less).
local function push_payloads(keys, payloads)
  local n = #payloads
  local last = redis.call('INCRBY', keys[4], n)
  local taken = redis.call('HGET', keys[3], 'taken')
  local base = (taken or 0) + redis.call('LLEN', keys[2])  -- (arithmetic, not tonumber: no C call)
  local first = last - n + 1
  for i = 1, n, 1000 do
    local j = i + 999
    if j > n then j = n end
    local length
    if i == j then  -- one payload (a push of one: no unpack)
      length = redis.call('LPUSH', keys[1], payloads[i])
    else
      length = redis.call('LPUSH', keys[1], unpack(payloads, i, j))
    end
    local run = string.format('%d', first + i - 1)
    if j > i then run = run .. ':' .. string.format('%d', j - i + 1) end
    local field = string.format('%d', base + length - (j - i))
    if taken then
      redis.call('HSET', keys[3], field, run)
    else  -- a new ids hash gets 'taken' first: queue_pop reads it on every call, and a small
      redis.call('HSET', keys[3], 'taken', '0', field, run)  -- hash (a listpack) is scanned
      taken = '0'                                            -- from the front for a field
    end
  end
  return first, n
end
