-- queue_push: LPUSH payloads onto a queue and give each an id, in one atomic step.
-- KEYS[1] waiting list (plain payloads: LPUSH in, RPOP out)
-- KEYS[2] ids hash: <sha1> -> "<taken> <added>", <sha1>:<n> -> id of the n-th push of that payload
-- KEYS[3] id counter
-- ARGV    the payloads, oldest first
-- Returns the ids, in ARGV order.
local n = #ARGV
local last = redis.call('INCRBY', KEYS[3], n)
local ids = {}
for i = 1, n do
  local id = string.format('%d', last - n + i)
  local digest = redis.sha1hex(ARGV[i])
  local taken, added = 0, 0
  local head = redis.call('HGET', KEYS[2], digest)
  if head then
    local a, b = string.match(head, '^(%d+) (%d+)$')
    taken, added = tonumber(a), tonumber(b)
  end
  added = added + 1
  redis.call('HSET', KEYS[2], digest, string.format('%d %d', taken, added),
    digest .. ':' .. string.format('%d', added), id)
  ids[i] = id
end
for i = 1, n, 1000 do
  redis.call('LPUSH', KEYS[1], unpack(ARGV, i, math.min(i + 999, n)))
end
return ids
