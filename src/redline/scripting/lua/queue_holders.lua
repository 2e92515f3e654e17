-- queue_holders: who holds a queue's in-flight messages: for each consumer that popped a batch
-- still in flight (the name its pop gave with '@', see queue_pop), how many batches and
-- messages. Messages with a lease of their own (extended apart from their batch, nacked and
-- the like) and batches whose pop named nobody are counted under ''.
-- KEYS[1] inflight zset   KEYS[2] batches hash (_batch.lua)
-- Returns {consumer1, batches1, messages1, ...}, in the order of their oldest lease.
-- include _batch.lua
local Q = {inflight = KEYS[1], batches = KEYS[2]}
local seen, order = {}, {}
for _, m in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local name, n = '', 1
  if batch_is(m) then
    local ids, _, _, consumer = batch_load(Q, m)
    name, n = consumer, #ids
  end
  if not seen[name] then
    seen[name] = {0, 0}
    order[#order + 1] = name
  end
  seen[name][1], seen[name][2] = seen[name][1] + (batch_is(m) and 1 or 0), seen[name][2] + n
end
local out = {}
for _, name in ipairs(order) do
  out[#out + 1], out[#out + 2], out[#out + 3] = name, seen[name][1], seen[name][2]
end
return out
