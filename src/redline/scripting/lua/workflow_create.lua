-- Create a workflow's state (all its keys share the slot {wf:<id>}); a no-op when it exists,
-- so an enqueue repeated with the same workflow id creates nothing twice.
-- KEYS[1] meta (hash)   KEYS[2] spec (member -> job document template, JSON)
-- KEYS[3] links (member -> {deps, next, mode, queue}, JSON)   KEYS[4] state (member -> state)
-- KEYS[5] pending (member -> unfinished dependencies)   KEYS[6] members (list, member order)
-- ARGV[1] number of meta field/value pairs n, ARGV[2 .. 1+2n] those pairs,
-- then per member: name, spec ("" for a first member: nothing dispatches it later), links,
-- pending count. Every member starts `waiting`; all but
-- `on_error` (the error callback) are listed in KEYS[6].
-- Returns 1 when created, 0 when the workflow already existed.
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local n = tonumber(ARGV[1])
for i = 2, 1 + 2 * n, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
local names = {}
for i = 2 + 2 * n, #ARGV, 4 do
  local name = ARGV[i]
  if ARGV[i + 1] ~= '' then redis.call('HSET', KEYS[2], name, ARGV[i + 1]) end
  redis.call('HSET', KEYS[3], name, ARGV[i + 2])
  redis.call('HSET', KEYS[4], name, 'waiting')
  redis.call('HSET', KEYS[5], name, ARGV[i + 3])
  if name ~= 'on_error' then names[#names + 1] = name end
  if #names == 1000 then redis.call('RPUSH', KEYS[6], unpack(names)); names = {} end
end
if #names > 0 then redis.call('RPUSH', KEYS[6], unpack(names)) end
return 1
