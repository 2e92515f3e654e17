-- Give up the vpush lease if this instance still holds it (a clean stop hands over at once).
-- KEYS[1] the lease key. ARGV[1] the lease value, "<instance>#<token>".
-- Returns 1 if released, 0 if the lease was not ours.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
