-- Give a fetched Sidekiq job back to its queue, at the end workers take from (it is next), as
-- Sidekiq does at shutdown; only if it was still in flight (else another process recovered it).
-- KEYS[1] the in-flight list, KEYS[2] queue:<name>.
-- ARGV[1] the job as fetched. Returns 1 when requeued, 0 when it was no longer in flight.
if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 0 then
  return 0
end
redis.call('RPUSH', KEYS[2], ARGV[1])
return 1
