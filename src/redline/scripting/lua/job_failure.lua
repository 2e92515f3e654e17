-- job_failure: record what became of a failed job (retried or dead), then drop the oldest failure
-- records past the queue's retention (the one its dead letters have, see _retention.lua),
-- counting them in the retention hash's `records_dropped`.
-- KEYS[1] failures hash: job id -> record (JSON)   KEYS[2] failed zset: job id -> recorded (ms)
-- KEYS[3] the queue's retention hash
-- ARGV[1] job id   ARGV[2] the record
-- Returns how many records were dropped.
-- include _retention.lua
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[2], now, ARGV[1])
return retention_trim(KEYS[2], KEYS[3], 'records_dropped', {KEYS[1]}, now)
