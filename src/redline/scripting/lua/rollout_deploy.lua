-- Write a new revision of a service's desired spec: a number never used before, kept in the
-- history as well.
-- KEYS[1] the revision counter ({ns}:cscale:revision), KEYS[2] the history
-- ({ns}:cscale:revisions), KEYS[3] the desired spec ({ns}:cscale:spec)
-- ARGV[1] the revision the caller started from ('' = whatever is there), ARGV[2] the history
-- record (JSON), ARGV[3] the version label, ARGV[4] the config overrides (JSON list)
-- Returns the new revision, or -1 when the desired revision is no longer ARGV[1].
local current = redis.call('HGET', KEYS[3], 'revision') or '0'
if ARGV[1] ~= '' and current ~= ARGV[1] then
  return -1
end
local n = redis.call('INCR', KEYS[1])
redis.call('HSET', KEYS[2], n, ARGV[2])
redis.call('DEL', KEYS[3])
redis.call('HSET', KEYS[3], 'revision', n, 'version', ARGV[3], 'sets', ARGV[4])
return n
