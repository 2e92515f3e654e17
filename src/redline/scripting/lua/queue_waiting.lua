-- queue_waiting: list waiting messages in delivery order (claim list first, then the waiting
-- list, oldest first), with the id push gave them ('' for a raw LPUSH, which gets its id on pop).
-- KEYS[1] waiting list   KEYS[2] claim list   KEYS[3] ids hash (see queue_push)
-- ARGV[1] start (0-based)   ARGV[2] count
-- Returns {id1, payload1, id2, payload2, ...}.
local start, count = tonumber(ARGV[1]), tonumber(ARGV[2])
local need = start + count
local ordered = {}
for _, list in ipairs({KEYS[2], KEYS[1]}) do
  if #ordered < need then
    local got = redis.call('LRANGE', list, -(need - #ordered), -1)
    for i = #got, 1, -1 do ordered[#ordered + 1] = got[i] end
  end
end
local out = {}
if #ordered <= start then return out end
local taken = tonumber(redis.call('HGET', KEYS[3], 'taken') or '0')
local fields = {}
for i = start + 1, #ordered do fields[#fields + 1] = string.format('%d', taken + i) end
local ids = redis.call('HMGET', KEYS[3], unpack(fields))
for i = start + 1, #ordered do
  out[#out + 1], out[#out + 2] = ids[i - start] or '', ordered[i]
end
return out
