-- Renew a service instance's lifecycle hash, but only if it is still ours.
-- KEYS[1] the instance hash (<ns>:<id>)
-- ARGV[1] host, ARGV[2] pid, ARGV[3] started (what we wrote at registration)
-- ARGV[4] now (unix seconds), ARGV[5] ttl seconds, ARGV[6] "1" to renew, "0" to only check
-- Returns 1 when the hash is ours (and renewed if asked), 0 when missing, -1 when changed.
local found = redis.call('HMGET', KEYS[1], 'host', 'pid', 'started')
if not found[1] and not found[2] and not found[3] then
  return 0
end
if found[1] ~= ARGV[1] or found[2] ~= ARGV[2] or found[3] ~= ARGV[3] then
  return -1
end
if ARGV[6] == '1' then
  redis.call('HSET', KEYS[1], 'renewed', ARGV[4])
  redis.call('EXPIRE', KEYS[1], ARGV[5])
end
return 1
