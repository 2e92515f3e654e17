-- Move scheduled jobs that are due onto the queue's waiting list (oldest due first).
-- KEYS[1] the scheduled sorted set, KEYS[2] the waiting list.
-- ARGV[1] now (unix seconds), ARGV[2] most jobs to move. Returns how many moved.
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, doc in ipairs(due) do
  redis.call('LPUSH', KEYS[2], doc)
  redis.call('ZREM', KEYS[1], doc)
end
return #due
