-- Release a unique job's lock, only if this job holds it (a later job may hold it by now).
-- KEYS[1] the unique lock key. ARGV[1] the job id. Returns 1 if released, else 0.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
