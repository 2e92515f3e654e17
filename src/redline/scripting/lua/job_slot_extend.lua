-- Extend the concurrency slots of running jobs to a new lease deadline (the heartbeat): one call
-- for all the slots a worker holds in one queue.
-- KEYS[1..] concurrency slots zsets: id -> lease deadline (ms)
-- ARGV[1] lease (ms)   ARGV[2..] per slots zset, in the order of KEYS: n, then the ids of the n
--         jobs holding slots there
-- Returns how many slots were still held (one reclaimed meanwhile is not taken back).
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local deadline, kept, a = now + tonumber(ARGV[1]), 0, 2
for _, slots in ipairs(KEYS) do
  local n = tonumber(ARGV[a])
  if n > 0 then
    local scored = {}
    for i = a + 1, a + n do scored[#scored + 1], scored[#scored + 2] = deadline, ARGV[i] end
    kept = kept + redis.call('ZADD', slots, 'XX', 'CH', unpack(scored))
  end
  a = a + 1 + n
end
return kept
