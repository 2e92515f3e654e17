-- Finish the transfer just delivered (if any) and claim the next one, for the lease holder only.
-- KEYS[1] input queue, KEYS[2] transfer list (the messages in flight, oldest first),
-- KEYS[3] transfer id key, KEYS[4] lease key.
-- ARGV[1] the lease value "<instance>#<token>", ARGV[2] batch size (0: only finish),
-- ARGV[3] a fresh transfer id, ARGV[4] the id of the transfer now on the remote ("" if none).
-- Returns -1 if the lease is not ours (fenced off), {} if nothing waits, else {id, messages...}:
-- the unfinished transfer if there is one (same id: the remote dedupes it), else a new one.
if redis.call('GET', KEYS[4]) ~= ARGV[1] then
  return -1
end
if ARGV[4] ~= '' and redis.call('GET', KEYS[3]) == ARGV[4] then
  redis.call('DEL', KEYS[2], KEYS[3])
end
if ARGV[2] == '0' then
  return {}
end
local held = redis.call('LRANGE', KEYS[2], 0, -1)
if #held > 0 then
  local id = redis.call('GET', KEYS[3])
  if not id then
    id = ARGV[3]
    redis.call('SET', KEYS[3], id)
  end
  table.insert(held, 1, id)
  return held
end
local popped = redis.call('RPOP', KEYS[1], tonumber(ARGV[2]))
if not popped then
  return {}
end
redis.call('RPUSH', KEYS[2], unpack(popped))
redis.call('SET', KEYS[3], ARGV[3])
table.insert(popped, 1, ARGV[3])
return popped
