-- Release a lease only if the caller still holds it.
-- KEYS[1] the lease; ARGV[1] the caller's token
-- Returns 1 when released, 0 when it was not the caller's (expired, taken by another).
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
