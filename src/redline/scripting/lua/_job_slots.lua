-- _job_slots.lua: included (`-- include _job_slots.lua`) by job_admit and job_slot_release,
-- which give back the concurrency slots of finished jobs and wake jobs waiting for one.
-- W is a table of the queue's priority levels 0-9: W.delayed[p + 1] (delayed zset) and
-- W.deliveries[p + 1] (deliveries hash) of priority p.

-- Gives back the slots of `ids` (jobs that finished) in `slots`, and for each wakes the first
-- job of `waiters` ("<priority>:<id>:<delivery count>") still waiting: due `now` in its delayed
-- set, if it waits there with the delivery count it was put back with (others are dropped).
-- Returns how many were woken.
local function slots_release(W, slots, waiters, ids, now)
  redis.call('ZREM', slots, unpack(ids))
  local woken = 0
  for _ = 1, 100 * #ids do
    if woken >= #ids then break end
    local entry = redis.call('LPOP', waiters)
    if not entry then break end
    local p, id, count = string.match(entry, '^(%d):([^:]+):(%d+)$')
    if p then
      local delayed, counts = W.delayed[tonumber(p) + 1], W.deliveries[tonumber(p) + 1]
      if redis.call('HGET', counts, id) == count and redis.call('ZSCORE', delayed, id) then
        redis.call('ZADD', delayed, now, id)
        woken = woken + 1
      end
    end
  end
  return woken
end

-- The W table of the 20 keys of `keys` (the call's keys, passed: a library then defines
-- these helpers once) from keys[first]: delayed zsets of priorities 0-9, then their deliveries
-- hashes.
local function slots_levels(keys, first)
  local W = {delayed = {}, deliveries = {}}
  for p = 1, 10 do
    W.delayed[p], W.deliveries[p] = keys[first + p - 1], keys[first + 9 + p]
  end
  return W
end

-- A member no job id is, longer than the server's zset-max-listpack-value (64 bytes unless
-- configured otherwise): see slots_add. 128 '~', written out: a library's top level runs where
-- the string module is not there yet (FUNCTION LOAD).
local SLOTS_WIDE = '~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~'
  .. '~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~'

-- Adds `scored` (deadline, id, ...) to `slots`. Many at once (a batch's, under a large cap)
-- go into a skiplist set: a listpack (a set of up to 128 members of up to 64 bytes) is
-- searched member by member for each one added or removed, ~12,000 instructions a member at
-- 64; a skiplist looks each up in its hash. A ZADD whose first member is too long for a
-- listpack makes (or turns) the set a skiplist, which it stays until it empties; the wide
-- member leaves in the same call, so no reader ever sees it.
local function slots_add(slots, scored)
  if #scored < 64 then
    redis.call('ZADD', slots, unpack(scored))
    return
  end
  redis.call('ZADD', slots, 0, SLOTS_WIDE, unpack(scored))
  redis.call('ZREM', slots, SLOTS_WIDE)
end
