-- Record that members' jobs were pushed: `waiting` -> `dispatched`, with the time. A member
-- cancelled meanwhile (its job was pushed after the workflow's cancel) is named in the reply,
-- so the caller cancels its job. A member whose job ran, and maybe ended, before this
-- confirmation (another worker took it at once) gets its push time all the same.
-- KEYS[1] meta   KEYS[2] state   KEYS[3] times (member:d / member:f / member:t -> value)
-- ARGV[1] when the push began (unix seconds)   ARGV[2..] members
-- Returns the members found cancelled.
if redis.call('EXISTS', KEYS[1]) == 0 then return {} end
local cancelled = {}
for i = 2, #ARGV do
  local state = redis.call('HGET', KEYS[2], ARGV[i])
  if state == 'waiting' then
    redis.call('HSET', KEYS[2], ARGV[i], 'dispatched')
    redis.call('HSET', KEYS[3], ARGV[i] .. ':d', ARGV[1])
  elseif state == 'cancelled' then
    cancelled[#cancelled + 1] = ARGV[i]
  elseif state and not redis.call('HGET', KEYS[3], ARGV[i] .. ':d') then
    redis.call('HSET', KEYS[3], ARGV[i] .. ':d', ARGV[1])
  end
end
return cancelled
