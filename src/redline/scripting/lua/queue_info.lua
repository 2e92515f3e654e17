-- queue_info: the counts of one queue, read atomically.
-- KEYS[1] waiting list   KEYS[2] claim list   KEYS[3] inflight zset   KEYS[4] delayed zset
-- KEYS[5] dead zset
-- Returns {waiting, inflight, delayed, dead, expired}: expired counts in-flight messages whose
-- lease has ended (the next pop or recover gives them back).
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
return {
  redis.call('LLEN', KEYS[1]) + redis.call('LLEN', KEYS[2]),
  redis.call('ZCARD', KEYS[3]),
  redis.call('ZCARD', KEYS[4]),
  redis.call('ZCARD', KEYS[5]),
  redis.call('ZCOUNT', KEYS[3], '-inf', now),
}
