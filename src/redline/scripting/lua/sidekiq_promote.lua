-- Move due Sidekiq jobs from the schedule or retry sorted set onto their queues. Each job is
-- removed first and pushed only if this call removed it, so a Ruby Sidekiq poller running at
-- the same time (which also removes before it pushes) and this one never both move a job.
-- KEYS[1] the sorted set, KEYS[2] the set of queue names, KEYS[2+i] queue:<name> of job i.
-- ARGV triples for job i: ARGV[3i-2] the member as stored, ARGV[3i-1] the job to push (with a
-- fresh enqueued_at), ARGV[3i] the queue name. Returns how many were moved.
local moved = 0
for i = 1, #KEYS - 2 do
  if redis.call('ZREM', KEYS[1], ARGV[3 * i - 2]) == 1 then
    redis.call('SADD', KEYS[2], ARGV[3 * i])
    redis.call('LPUSH', KEYS[2 + i], ARGV[3 * i - 1])
    moved = moved + 1
  end
end
return moved
