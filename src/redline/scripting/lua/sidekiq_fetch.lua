-- Fetch up to N Sidekiq jobs into this process's in-flight lists (reliable fetch): each job is
-- moved, never popped, so a process killed while running it leaves it where another process
-- recovers it once this one's heartbeat has expired (sidekiq_recover.lua).
-- KEYS[1] the in-flight registry (zset: member -> when last registered);
-- then pairs KEYS[2i], KEYS[2i+1]: queue:<name> and this process's in-flight list for it,
-- in priority order.
-- ARGV[1] most jobs to take, ARGV[2] now (unix seconds); ARGV[2+i] the registry member of pair i.
-- Returns a flat list: pair number (1-based), job, pair number, job, ...
local want = tonumber(ARGV[1])
local taken = {}
local pairs_count = (#KEYS - 1) / 2
for i = 1, pairs_count do
  if want <= 0 then break end
  local queue, inflight = KEYS[2 * i], KEYS[2 * i + 1]
  if redis.call('LLEN', queue) > 0 then
    redis.call('ZADD', KEYS[1], ARGV[2], ARGV[2 + i])
    while want > 0 do
      local job = redis.call('LMOVE', queue, inflight, 'RIGHT', 'LEFT')
      if not job then break end
      taken[#taken + 1] = i
      taken[#taken + 1] = job
      want = want - 1
    end
  end
end
return taken
