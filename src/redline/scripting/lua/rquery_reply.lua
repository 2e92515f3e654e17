-- Answer one rquery request: push the reply and drop the request from the pending list, at once.
-- KEYS[1] the instance's pending list, KEYS[2] the reply list.
-- ARGV[1] the raw request (as popped), ARGV[2] the reply document, ARGV[3] reply TTL in seconds.
-- Returns the number of requests removed from pending (0 if it was already answered).
redis.call('LPUSH', KEYS[2], ARGV[2])
redis.call('EXPIRE', KEYS[2], ARGV[3])
return redis.call('LREM', KEYS[1], -1, ARGV[1])
