-- Enqueue a unique job: push it only if no job holding the same unique key is pending.
-- KEYS[1] the queue's waiting list, KEYS[2] the unique lock key, KEYS[3] the scheduled set.
-- ARGV[1] job document, ARGV[2] job id, ARGV[3] lock ttl in seconds, ARGV[4] due time
-- (unix seconds; "" = now: push to the waiting list; else add to the scheduled set).
-- Returns "" when enqueued, else the id of the pending job that holds the key.
local holder = redis.call('GET', KEYS[2])
if holder then return holder end
redis.call('SET', KEYS[2], ARGV[2], 'EX', tonumber(ARGV[3]))
if ARGV[4] == '' then
  redis.call('LPUSH', KEYS[1], ARGV[1])
else
  redis.call('ZADD', KEYS[3], tonumber(ARGV[4]), ARGV[1])
end
return ''
