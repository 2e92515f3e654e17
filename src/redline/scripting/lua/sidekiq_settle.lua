-- Settle a fetched Sidekiq job that did not simply succeed: take it out of the in-flight list
-- and, only if it was still there, add it to a sorted set (retry, dead, or schedule).
-- A job no longer in flight was recovered by another process (this one's heartbeat had
-- expired): it runs again there, so nothing is added here (a stale worker cannot duplicate it).
-- KEYS[1] the in-flight list, KEYS[2] the sorted set.
-- ARGV[1] the job as fetched, ARGV[2] the job to add (may differ: error fields), ARGV[3] score;
-- ARGV[4], ARGV[5] (optional, for the morgue): drop members scored below ARGV[4], keep at most
-- ARGV[5] members. Returns 1 when settled, 0 when the job was no longer in flight.
if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 0 then
  return 0
end
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[2])
if ARGV[4] then
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. ARGV[4])
  redis.call('ZREMRANGEBYRANK', KEYS[2], 0, -tonumber(ARGV[5]) - 1)
end
return 1
