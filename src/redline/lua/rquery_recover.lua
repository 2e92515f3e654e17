-- Give a dead rquery instance's unanswered requests back to the input queue.
-- KEYS[1] input queue, KEYS[2] the instance's pending list, KEYS[3] its liveness key,
-- KEYS[4] the set of instances. ARGV[1] the instance's name.
-- Returns -1 while the instance is alive, else the number of requests returned.
if redis.call('EXISTS', KEYS[3]) == 1 then
  return -1
end
local moved = 0
-- Newest first onto the right end, so the oldest ends up taken next (FIFO is kept).
while redis.call('LMOVE', KEYS[2], KEYS[1], 'LEFT', 'RIGHT') do
  moved = moved + 1
end
redis.call('SREM', KEYS[4], ARGV[1])
return moved
