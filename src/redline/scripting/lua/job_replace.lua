-- Enqueue a unique job that replaces the pending job with its key (replace=True, debounce):
-- the pending document is swapped for the new one where it waits (its place in the list, or
-- its due time in the scheduled set unless ARGV[5] moves it); a job with the key that is no
-- longer pending (running, retrying) is left alone and the new one is enqueued beside it.
-- KEYS[1] the list it waits in   KEYS[2] the scheduled set of its priority
-- KEYS[3] the unique lock (value: the pending job's id)
-- KEYS[4] the pending job's document (kept while the lock is)
-- KEYS[5] the queue's set of priorities used
-- ARGV[1] document   ARGV[2] job id   ARGV[3] lock ttl (seconds)
-- ARGV[4] due time (unix seconds; "" = now)   ARGV[5] "1": a scheduled job takes the new due
-- time (debounce); "0": it keeps its own   ARGV[6] priority (0-9)
-- Returns "replaced" or "enqueued".
local doc, ttl = ARGV[1], tonumber(ARGV[3])
local function hold()
  redis.call('SET', KEYS[3], ARGV[2], 'EX', ttl)
  redis.call('SET', KEYS[4], doc, 'EX', ttl)
end
local old = redis.call('GET', KEYS[4])
if old and redis.call('GET', KEYS[3]) then
  local due = redis.call('ZSCORE', KEYS[2], old)
  if due then
    if ARGV[5] == '1' and ARGV[4] ~= '' then due = ARGV[4] end
    redis.call('ZREM', KEYS[2], old)
    redis.call('ZADD', KEYS[2], due, doc)
    hold()
    return 'replaced'
  end
  local at = redis.call('LPOS', KEYS[1], old)
  if at then
    redis.call('LSET', KEYS[1], at, doc)
    hold()
    return 'replaced'
  end
end
hold()
if ARGV[6] ~= '0' then redis.call('SADD', KEYS[5], ARGV[6]) end
if ARGV[4] == '' then
  redis.call('LPUSH', KEYS[1], doc)
else
  redis.call('ZADD', KEYS[2], ARGV[4], doc)
end
return 'enqueued'
