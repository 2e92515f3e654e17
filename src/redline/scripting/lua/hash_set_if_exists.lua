-- Set fields of a hash only if it exists (never recreate a lifecycle hash deleted meanwhile).
-- KEYS[1] the hash; ARGV field, value, field, value, ...
-- Returns 1 when set, 0 when the hash is gone.
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
redis.call('HSET', KEYS[1], unpack(ARGV))
return 1
