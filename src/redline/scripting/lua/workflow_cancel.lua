-- Cancel a workflow: every member not finished becomes `cancelled` (so none is dispatched
-- from now on, and a late outcome of one is ignored), the workflow ends `cancelled`.
-- KEYS[1] meta   KEYS[2] spec   KEYS[3] links   KEYS[4] state   KEYS[5] pending
-- KEYS[6] members   KEYS[7] results   KEYS[8] errors   KEYS[9] times
-- ARGV[1] now (unix seconds)
-- Returns {"unknown"} (no such workflow, or expired), {"finished"} (it had ended), or
-- {"cancelled", then per member whose job was already pushed: name, links (JSON, its queue)}:
-- the caller cancels those jobs where they wait or run.
local meta, links, state, times = KEYS[1], KEYS[3], KEYS[4], KEYS[9]
if redis.call('EXISTS', meta) == 0 then return {'unknown'} end
if redis.call('HGET', meta, 'finished') then return {'finished'} end
local out = {'cancelled'}
local names = redis.call('LRANGE', KEYS[6], 0, -1)
names[#names + 1] = 'on_error'
for _, m in ipairs(names) do
  local st = redis.call('HGET', state, m)
  if st == 'waiting' or st == 'dispatched' then
    redis.call('HSET', state, m, 'cancelled')
    redis.call('HSET', times, m .. ':f', ARGV[1])
    if m ~= 'on_error' then redis.call('HINCRBY', meta, 'cancelled', 1) end
    if st == 'dispatched' then
      out[#out + 1] = m
      out[#out + 1] = redis.call('HGET', links, m)
    end
  end
end
redis.call('HSET', meta, 'state', 'cancelled', 'finished', ARGV[1])
local ttl = tonumber(redis.call('HGET', meta, 'ttl'))
for _, key in ipairs(KEYS) do redis.call('EXPIRE', key, ttl) end
return out
