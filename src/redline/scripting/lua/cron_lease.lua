-- Take, renew or release the cron scheduler's lease (one active scheduler across replicas).
-- KEYS[1] lease key. ARGV[1] owner, ARGV[2] lease in ms (0: release if owned).
-- Returns 1 when ARGV[1] holds the lease after the call, else 0.
local holder = redis.call('GET', KEYS[1])
local ms = tonumber(ARGV[2])
if ms == 0 then
  if holder == ARGV[1] then redis.call('DEL', KEYS[1]) end
  return 0
end
if holder == false or holder == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ms)
  return 1
end
return 0
