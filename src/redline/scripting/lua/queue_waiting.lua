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
-- The ids of positions taken+start+1 .. taken+#ordered: the runs push numbered start at or after
-- taken+1, so they are found walking from there, one HGET per run or raw message.
local taken = tonumber(redis.call('HGET', KEYS[3], 'taken') or '0')
local ids, p, last = {}, taken + 1, taken + #ordered
if redis.call('EXISTS', KEYS[3]) == 0 then p = last + 1 end  -- only raw LPUSHes: no ids yet
while p <= last do
  local run = redis.call('HGET', KEYS[3], string.format('%d', p))
  local len = 1
  if run then
    local first, n = string.match(run, '^(%d+):?(%d*)$')
    first, len = tonumber(first), tonumber(n) or 1
    for q = math.max(p, taken + start + 1), math.min(p + len - 1, last) do
      ids[q] = string.format('%d', first + q - p)
    end
  end
  p = p + len
end
for i = start + 1, #ordered do
  out[#out + 1], out[#out + 2] = ids[taken + i] or '', ordered[i]
end
return out
