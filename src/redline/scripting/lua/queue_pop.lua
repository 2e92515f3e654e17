-- queue_pop: acknowledge the (id, token) pairs after ARGV[3], then deliver up to ARGV[1] messages
-- of one queue, without blocking: first the in-flight messages whose lease has expired (recovered
-- here, up to max(ARGV[1], 100) per call, so a consumer that died is made good by the next pop of
-- any consumer however much waits), then the other due delayed messages (all oldest first), then
-- the claim list (filled by blocking consumers' BLMOVE), then the waiting list. Each delivered
-- message gets a lease in the in-flight set and one more delivery (its fencing token). An expired
-- message that has had ARGV[3] deliveries goes to the dead letters instead (the oldest dead
-- letters past the queue's retention are dropped, see _retention.lua). With ARGV[1] = 0 it only
-- acknowledges: an ack is accepted while the token (delivery count) is current and the message
-- is in flight or recovered but not yet redelivered; one redelivered since or dead-lettered is
-- refused.
-- KEYS[1] waiting list       KEYS[2] claim list        KEYS[3] ids hash (see queue_push)
-- KEYS[4] id counter         KEYS[5] inflight zset: id -> lease deadline (ms)
-- KEYS[6] delayed zset: id -> due time (ms)            KEYS[7] payloads hash: id -> payload
-- KEYS[8] deliveries hash: id -> count                 KEYS[9] since hash: id -> delivered at (ms)
-- KEYS[10] reasons hash: id -> last nack or dead-letter reason
-- KEYS[11] dead zset: id -> dead-lettered at (ms)      KEYS[12] retention hash (_retention.lua)
-- ARGV[1] count (0 to 1000)   ARGV[2] lease (ms)   ARGV[3] max deliveries
-- ARGV[4..] id1, token1, id2, token2, ... to acknowledge
-- Returns {delayed_wait, lease_wait, n, acked_id1 .. acked_idn, id1, payload1, deliveries1, ...}:
-- the waits are the ms until the next delayed message is due and until the next lease expires
-- (0: already; -1: none); then the n ids acknowledged; then the deliveries.
-- include _retention.lua
local count, lease, max = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)

-- One HMGET and one ZMSCORE for the whole batch: per-message calls are what made acks slow.
local acked, ids, tokens, seen, leased_ids = {}, {}, {}, {}, {}
for i = 4, #ARGV, 2 do ids[#ids + 1], tokens[#tokens + 1] = ARGV[i], ARGV[i + 1] end
if #ids > 0 then
  local counts = redis.call('HMGET', KEYS[8], unpack(ids))
  local leased = redis.call('ZMSCORE', KEYS[5], unpack(ids))
  for i, id in ipairs(ids) do
    if counts[i] == tokens[i] and not seen[id] then
      seen[id] = true
      if leased[i] then  -- its lease leaves the in-flight set at the end (see there)
        acked[#acked + 1], leased_ids[#leased_ids + 1], seen[id] = id, id, 'leased'
      elseif redis.call('ZREM', KEYS[6], id) == 1 then  -- recovered, not yet redelivered
        acked[#acked + 1] = id
      end
    end
  end
end
-- The reasons hash exists only while some message has a reason: most acks skip it.
local kept = {7, 8, 9}
if #acked > 0 and redis.call('EXISTS', KEYS[10]) == 1 then kept[4] = 10 end
for i = 1, #acked, 1000 do
  local j = math.min(i + 999, #acked)
  for _, k in ipairs(kept) do redis.call('HDEL', KEYS[k], unpack(acked, i, j)) end
end

local out, leases, since = {0, 0, #acked}, {}, {}
for i, id in ipairs(acked) do out[3 + i] = id end
local o, l = #out, 0  -- lengths of out and of leases (= since): Lua 5.1's # is not free

local function deliver(id, payload, n)
  out[o + 1], out[o + 2], out[o + 3], o = id, payload, n, o + 3
  leases[l + 1], leases[l + 2], since[l + 1], since[l + 2], l = now + lease, id, id, now, l + 2
end

-- The ids push gave the `n` messages at positions taken+1 .. taken+n (false: a raw LPUSH).
local function known_ids(n, drained)
  if redis.call('EXISTS', KEYS[3]) == 0 then return {} end  -- only raw LPUSHes since it drained
  local taken = tonumber(redis.call('HGET', KEYS[3], 'taken') or '0')
  local fields = {}
  for i = 1, n do fields[i] = string.format('%d', taken + i) end
  local ids = redis.call('HMGET', KEYS[3], unpack(fields))
  if drained then  -- nothing left to number: positions start again from 1
    redis.call('DEL', KEYS[3])
  else
    redis.call('HDEL', KEYS[3], unpack(fields))
    redis.call('HSET', KEYS[3], 'taken', string.format('%d', taken + n))
  end
  return ids
end

local function wait_for(zset)
  local first = redis.call('ZRANGE', zset, 0, 0, 'WITHSCORES')
  if #first == 0 then return -1 end
  return math.max(0, tonumber(first[2]) - now)
end

-- Expired leases go back to the delayed set, due now, and are delivered below ahead of anything
-- newer. When no lease has ended this costs one ZRANGEBYSCORE that finds nothing (a skiplist
-- lookup); acked ones still in the set (see the end) are skipped.
local function recover_expired()
  local limit = math.max(count, 100) + #leased_ids
  local expired = redis.call('ZRANGEBYSCORE', KEYS[5], '-inf', now, 'LIMIT', 0, limit)
  local back, dead, reasons = {}, {}, {}
  for _, id in ipairs(expired) do
    if seen[id] ~= 'leased' then
      local n = tonumber(redis.call('HGET', KEYS[8], id) or 0)
      redis.call('ZREM', KEYS[5], id)
      redis.call('HDEL', KEYS[9], id)
      if n >= max then
        dead[#dead + 1], dead[#dead + 2] = now, id
        reasons[#reasons + 1] = id
        reasons[#reasons + 1] = 'max deliveries (' .. ARGV[3] .. ') reached: lease expired'
      else
        back[#back + 1], back[#back + 2] = now, id
      end
    end
  end
  if #back > 0 then redis.call('ZADD', KEYS[6], unpack(back)) end
  if #dead > 0 then
    redis.call('ZADD', KEYS[11], unpack(dead))
    redis.call('HSET', KEYS[10], unpack(reasons))
    retention_trim(KEYS[11], KEYS[12], 'dropped', {KEYS[7], KEYS[8], KEYS[10]}, now)
  end
end
if count > 0 then recover_expired() end

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
    if got and #fresh == 0 then
      fresh, want = got, want - #got
    elseif got then
      for _, payload in ipairs(got) do fresh[#fresh + 1] = payload end
      want = want - #got
    end
  end
end

if #fresh > 0 then
  local drained = want > 0 or redis.call('EXISTS', KEYS[1], KEYS[2]) == 0
  local ids, unknown = known_ids(#fresh, drained), 0
  for i = 1, #fresh do
    if not ids[i] then unknown = unknown + 1 end
  end
  local next_id = 0
  if unknown > 0 then next_id = redis.call('INCRBY', KEYS[4], unknown) - unknown end
  local payloads, counts = {}, {}
  for i, payload in ipairs(fresh) do
    if not ids[i] then
      next_id = next_id + 1
      ids[i] = string.format('%d', next_id)
    end
    deliver(ids[i], payload, 1)
    payloads[2 * i - 1], payloads[2 * i] = ids[i], payload
    counts[2 * i - 1], counts[2 * i] = ids[i], 1
  end
  redis.call('HSET', KEYS[7], unpack(payloads))
  redis.call('HSET', KEYS[8], unpack(counts))
end

if #leases > 0 then
  redis.call('ZADD', KEYS[5], unpack(leases))
  redis.call('HSET', KEYS[9], unpack(since))
end
-- The acked leases go after the new ones are in (the two sets of ids are disjoint): a steady
-- consumer's in-flight zset then never empties, so past 128 members it stays a skiplist instead
-- of being rebuilt as a listpack, where each ZADD scans every member (7x slower at 100).
if #leased_ids > 0 then redis.call('ZREM', KEYS[5], unpack(leased_ids)) end
out[1], out[2] = wait_for(KEYS[6]), wait_for(KEYS[5])
return out
