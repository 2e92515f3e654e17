-- Add to integer fields of a hash only if it exists (never recreate a lifecycle hash deleted
-- meanwhile: a hash without its TTL would look like a live instance forever).
-- KEYS[1] the hash; ARGV field, increment, field, increment, ...
-- Returns 1 when added, 0 when the hash is gone.
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
for i = 1, #ARGV, 2 do
  redis.call('HINCRBY', KEYS[1], ARGV[i], ARGV[i + 1])
end
return 1
