-- Make an existing revision the desired spec again (a rollback), unless someone changed the
-- desired revision meanwhile.
-- KEYS[1] the desired spec ({ns}:cscale:spec)
-- ARGV[1] the revision the caller expects there ('' = whatever is there), ARGV[2] the revision
-- to set, ARGV[3] its version label, ARGV[4] its config overrides (JSON list)
-- Returns 1 when set, 0 when the desired revision is no longer ARGV[1].
local current = redis.call('HGET', KEYS[1], 'revision') or '0'
if ARGV[1] ~= '' and current ~= ARGV[1] then
  return 0
end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'revision', ARGV[2], 'version', ARGV[3], 'sets', ARGV[4])
return 1
