-- Give back the concurrency slots of finished jobs, waking a job still waiting for a slot for
-- each (due now in its delayed set, if it waits there with the delivery count it was put back
-- with). One call for all the slots of one queue a worker gives back together.
-- KEYS[1..10] the queue's delayed zsets of priorities 0-9   KEYS[11..20] their deliveries hashes
-- KEYS[21..] per limit, two keys: concurrency slots zset, concurrency waiters list
--            ("<priority>:<id>:<count>")
-- ARGV per limit, in the order of its keys: n, then the ids of the n finished jobs
-- Returns how many waiting jobs were woken.
-- include _job_slots.lua
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local W = slots_levels(KEYS, 1)
local woken, a = 0, 1
for k = 21, #KEYS, 2 do
  local n = tonumber(ARGV[a])
  if n > 0 then
    woken = woken + slots_release(W, KEYS[k], KEYS[k + 1], {unpack(ARGV, a + 1, a + n)}, now)
  end
  a = a + 1 + n
end
return woken
