-- Take or renew the one vpush lease of an input queue (leader election with a fencing token).
-- KEYS[1] the lease key, KEYS[2] the fencing-token counter.
-- ARGV[1] this instance's name, ARGV[2] lease time in milliseconds.
-- Returns this instance's token (> 0) while it holds the lease, 0 while another one does.
local current = redis.call('GET', KEYS[1])
if current then
  local holder, token = string.match(current, '^(.*)#(%d+)$')
  if holder == ARGV[1] then
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
    return tonumber(token)
  end
  return 0
end
local token = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], ARGV[1] .. '#' .. token, 'PX', ARGV[2])
return token
