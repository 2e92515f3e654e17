-- Push one transfer onto the remote list exactly once: record its id and push in one step.
-- KEYS[1] the output list, KEYS[2] the transfer's dedupe record (in the output list's slot).
-- ARGV[1] dedupe window in milliseconds, ARGV[2..] the messages, oldest first.
-- Returns 1 if pushed, 0 if this transfer id was already pushed (a retry after a lost reply).
if not redis.call('SET', KEYS[2], '1', 'NX', 'PX', ARGV[1]) then
  return 0
end
for i = 2, #ARGV do
  redis.call('LPUSH', KEYS[1], ARGV[i])
end
return 1
