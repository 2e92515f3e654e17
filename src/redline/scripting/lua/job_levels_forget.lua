-- Forget a priority of a queue once nothing is left at it: remove it from the queue's set of
-- priorities in use, so workers stop popping its list and readers stop listing it. Enqueueing
-- at that priority adds it again in the same script as the push, so the set never misses a
-- priority that holds a job.
-- KEYS[1] the queue's priorities in use (set, {q}:job-priorities)
-- KEYS[2..] every key that holds the priority's jobs: its list, the queue keys beside it that
--           hold messages (claimed, in flight, delayed, dead, payloads, ...) and its scheduled set
-- ARGV[1] the priority
-- Returns 1 when it was forgotten, 0 when a job (or a dead letter) is still there.
for i = 2, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 1 then
    return 0
  end
end
return redis.call('SREM', KEYS[1], ARGV[1])
