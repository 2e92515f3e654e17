-- queue_pop: acknowledge the (id, token) pairs after ARGV[2], then deliver up to ARGV[1] messages
-- of one queue, without blocking: due delayed messages first, then the claim list (filled by
-- blocking consumers' BLMOVE), then the waiting list. Each delivered message gets a lease in the
-- in-flight set and one more delivery (its fencing token). With ARGV[1] = 0 it only acknowledges:
-- an ack is accepted while the token (delivery count) is current and the message is in flight or
-- recovered but not yet redelivered; one redelivered since or dead-lettered is refused.
-- KEYS[1] waiting list       KEYS[2] claim list        KEYS[3] ids hash (see queue_push)
-- KEYS[4] id counter         KEYS[5] inflight zset: id -> lease deadline (ms)
-- KEYS[6] delayed zset: id -> due time (ms)            KEYS[7] payloads hash: id -> payload
-- KEYS[8] deliveries hash: id -> count                 KEYS[9] since hash: id -> delivered at (ms)
-- KEYS[10] reasons hash: id -> last nack or dead-letter reason
-- ARGV[1] count (0 to 1000)   ARGV[2] lease (ms)   ARGV[3..] id1, token1, id2, token2, ... to ack
-- Returns {delayed_wait, lease_wait, n, acked_id1 .. acked_idn, id1, payload1, deliveries1, ...}:
-- the waits are the ms until the next delayed message is due and until the next lease expires
-- (0: already; -1: none); then the n ids acknowledged; then the deliveries.
local count, lease = tonumber(ARGV[1]), tonumber(ARGV[2])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)

local acked = {}
for i = 3, #ARGV, 2 do
  local id = ARGV[i]
  if redis.call('HGET', KEYS[8], id) == ARGV[i + 1]
    and (redis.call('ZREM', KEYS[5], id) == 1 or redis.call('ZREM', KEYS[6], id) == 1) then
    acked[#acked + 1] = id
  end
end
for i = 1, #acked, 1000 do
  local chunk = {unpack(acked, i, math.min(i + 999, #acked))}
  for _, k in ipairs({7, 8, 9, 10}) do redis.call('HDEL', KEYS[k], unpack(chunk)) end
end

local out, leases, since = {0, 0, #acked}, {}, {}
for _, id in ipairs(acked) do out[#out + 1] = id end

local function deliver(id, payload, n)
  out[#out + 1], out[#out + 2], out[#out + 3] = id, payload, n
  leases[#leases + 1], leases[#leases + 2] = now + lease, id
  since[#since + 1], since[#since + 2] = id, now
end

local function take_id(payload)
  local digest = redis.sha1hex(payload)
  local head = redis.call('HGET', KEYS[3], digest)
  if not head then return false end
  local a, b = string.match(head, '^(%d+) (%d+)$')
  local taken, added = tonumber(a) + 1, tonumber(b)
  local field = digest .. ':' .. string.format('%d', taken)
  local id = redis.call('HGET', KEYS[3], field)
  if taken >= added then
    redis.call('HDEL', KEYS[3], digest, field)
  else
    redis.call('HSET', KEYS[3], digest, string.format('%d %d', taken, added))
    redis.call('HDEL', KEYS[3], field)
  end
  return id
end

local function wait_for(zset)
  local first = redis.call('ZRANGE', zset, 0, 0, 'WITHSCORES')
  if #first == 0 then return -1 end
  return math.max(0, tonumber(first[2]) - now)
end

local due = {}
if count > 0 then due = redis.call('ZRANGEBYSCORE', KEYS[6], '-inf', now, 'LIMIT', 0, count) end
if #due > 0 then redis.call('ZREM', KEYS[6], unpack(due)) end
for _, id in ipairs(due) do
  local payload = redis.call('HGET', KEYS[7], id)
  if payload then deliver(id, payload, redis.call('HINCRBY', KEYS[8], id, 1)) end
end

local fresh, want = {}, count - #due
for _, list in ipairs({KEYS[2], KEYS[1]}) do
  if want > 0 then
    local got = redis.call('RPOP', list, want)
    if got then
      for _, payload in ipairs(got) do fresh[#fresh + 1] = payload end
      want = want - #got
    end
  end
end

if #fresh > 0 then
  local mapped = redis.call('EXISTS', KEYS[3]) == 1
  local ids, unknown = {}, 0
  for i, payload in ipairs(fresh) do
    ids[i] = mapped and take_id(payload)
    if not ids[i] then unknown = unknown + 1 end
  end
  local next_id = redis.call('INCRBY', KEYS[4], unknown) - unknown
  local payloads, counts = {}, {}
  for i, payload in ipairs(fresh) do
    if not ids[i] then
      next_id = next_id + 1
      ids[i] = string.format('%d', next_id)
    end
    deliver(ids[i], payload, 1)
    payloads[#payloads + 1], payloads[#payloads + 2] = ids[i], payload
    counts[#counts + 1], counts[#counts + 2] = ids[i], 1
  end
  redis.call('HSET', KEYS[7], unpack(payloads))
  redis.call('HSET', KEYS[8], unpack(counts))
end

if #leases > 0 then
  redis.call('ZADD', KEYS[5], unpack(leases))
  redis.call('HSET', KEYS[9], unpack(since))
end
out[1], out[2] = wait_for(KEYS[6]), wait_for(KEYS[5])
return out
