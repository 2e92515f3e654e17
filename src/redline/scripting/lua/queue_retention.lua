-- queue_retention: set what a queue keeps of its dead letters (and the jobs layer of its failure
-- records): the newest ARGV[1] entries, none older than ARGV[2] ms. Takes effect the next time a
-- dead letter (or failure record) is added: the oldest past either bound are then dropped.
-- KEYS[1] retention hash (_retention.lua)
-- ARGV[1] max entries (>= 1)   ARGV[2] max age (ms, >= 1)
-- Returns {max, age}, as now in force.
redis.call('HSET', KEYS[1], 'max', ARGV[1], 'age', ARGV[2])
return {tonumber(ARGV[1]), tonumber(ARGV[2])}
