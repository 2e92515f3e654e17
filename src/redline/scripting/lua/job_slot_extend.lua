-- Extend the concurrency slots a worker holds (running jobs', and those it keeps for its next
-- jobs) to a new lease deadline, and say which limits have jobs waiting for a slot (the worker
-- then gives its free slots back instead of reusing them). One call per queue, every
-- `held_slots.CHECK` seconds at most.
-- KEYS per limit, 2 keys: concurrency slots zset (name -> lease deadline, ms), waiters list
-- ARGV[1] lease (ms)   ARGV[2..] per limit, in the order of KEYS: n, then the n slot names
-- Returns {waiting, lost...}: waiting a string of one character per limit, '1' when jobs wait
-- for one of its slots, else '0'; then the names no longer held (reclaimed meanwhile: not
-- taken back).
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local deadline, waiting, reply, a = now + tonumber(ARGV[1]), {}, {''}, 2
for k = 1, #KEYS, 2 do
  local n = tonumber(ARGV[a])
  if n > 0 then
    local names = {unpack(ARGV, a + 1, a + n)}
    local scores = redis.call('ZMSCORE', KEYS[k], unpack(names))
    local scored = {}
    for j, name in ipairs(names) do
      if scores[j] then
        scored[#scored + 1], scored[#scored + 2] = deadline, name
      else
        reply[#reply + 1] = name
      end
    end
    if #scored > 0 then redis.call('ZADD', KEYS[k], 'XX', unpack(scored)) end
  end
  waiting[#waiting + 1] = redis.call('LLEN', KEYS[k + 1]) > 0 and '1' or '0'
  a = a + 1 + n
end
reply[1] = table.concat(waiting)
return reply
