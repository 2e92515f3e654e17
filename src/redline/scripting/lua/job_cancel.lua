-- job_cancel: ask for a job to be cancelled. The id goes into the queue's set of cancelled ids,
-- which every worker serving the queue reads twice a second: a waiting, scheduled or retrying
-- job is dropped when popped (never run); a running one is cancelled where it runs.
-- KEYS[1] the queue's cancelled zset: job id -> when asked (ms)   KEYS[2] the job's status hash
-- ARGV[1] job id   ARGV[2] most ids kept   ARGV[3] ms an id is kept
-- Returns 1 when asked, 0 when the job had already finished (its status says so).
local state = redis.call('HGET', KEYS[2], 'state')
if state == 'complete' or state == 'dead' or state == 'cancelled' or state == 'expired' then
  return 0
end
local now = redis.call('TIME')
local ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
redis.call('ZADD', KEYS[1], ms, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ms - tonumber(ARGV[3]))
redis.call('ZREMRANGEBYRANK', KEYS[1], 0, -(tonumber(ARGV[2]) + 1))
if redis.call('EXISTS', KEYS[2]) == 1 then
  redis.call('HSET', KEYS[2], 'cancel_requested_at', string.format('%d', ms))
end
return 1
