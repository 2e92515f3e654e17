-- queue_pop: acknowledge what ARGV[4..] names, then deliver up to ARGV[1] messages of one queue,
-- without blocking: first the in-flight messages whose lease has expired (recovered here, up to
-- max(ARGV[1], 100) per call, so a consumer that died is made good by the next pop of any
-- consumer however much waits), then the other due delayed messages (all oldest first), then
-- the claim list (filled by blocking consumers' BLMOVE), then the waiting list. What one call
-- delivers is leased as one batch (_batch.lua), each message with one more delivery (its fencing
-- token). An expired message that has had ARGV[3] deliveries goes to the dead letters instead
-- (the oldest dead letters past the queue's retention are dropped, see _retention.lua). With
-- ARGV[1] = 0 it only acknowledges: an ack is accepted while the token (delivery count) is
-- current and the message is in flight or recovered but not yet redelivered; one redelivered
-- since or dead-lettered is refused.
-- KEYS[1] waiting list       KEYS[2] claim list        KEYS[3] ids hash (see queue_push)
-- KEYS[4] id counter         KEYS[5] inflight zset: id or batch -> lease deadline (ms)
-- KEYS[6] delayed zset: id -> due time (ms)            KEYS[7] payloads hash: id -> payload
-- KEYS[8] deliveries hash: id -> count                 KEYS[9] since hash: id or batch -> ms
-- KEYS[10] reasons hash: id -> last nack or dead-letter reason
-- KEYS[11] dead zset: id -> dead-lettered at (ms)      KEYS[12] retention hash (_retention.lua)
-- KEYS[13] batches hash: batch -> its messages         KEYS[14] batched zset: id runs -> batch
-- ARGV[1] count (0 to 1000)   ARGV[2] lease (ms)   ARGV[3] max deliveries
-- ARGV[4..] pairs, each one of:
--   id, token              acknowledge one message
--   batch, 'n:id:token'    acknowledge the whole batch a pop named (see '@'): accepted when the
--                          batch still holds the n messages that pop delivered, the first of
--                          them being id with that token; else refused whole, and then nothing
--                          is delivered (count is taken as 0), so that the caller can ack those
--                          messages one by one, still ahead of any recovery
--   '@', consumer          lease what this call delivers to `consumer` (shown by queue_view)
--                          and name its batch in the reply
-- Returns {delayed_wait, lease_wait, n, acked1 .. ackedn, [batch,] id1, payload1, deliveries1,
-- ...}: the waits are the ms until the next delayed message is due and until the next lease
-- expires (0: already; -1: none); then the n acknowledged: the message ids acked one by one and
-- the batches acked whole; then, when '@' was given, the name of the batch delivered ('' when
-- nothing was); then the deliveries.
-- include _retention.lua
-- include _batch.lua
local count, lease, max = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local Q = {
  inflight = KEYS[5], payloads = KEYS[7], deliveries = KEYS[8], since = KEYS[9],
  batches = KEYS[13], batched = KEYS[14],
}

-- Acks of messages a batch holds: the whole batch acked at once closes it without rewriting.
local function ack_batch(b, picks, ids, tokens, ok)
  local held, counts, payloads, consumer, runs = batch_load(Q, b)
  local at, gone, gone_ids = {}, {}, {}
  for i, id in ipairs(held) do at[id] = i end
  for _, i in ipairs(picks) do
    local p = at[ids[i]]
    if p and not gone[p] and tostring(counts[p]) == tokens[i] then
      gone[p], ok[i] = true, true
      gone_ids[#gone_ids + 1] = ids[i]
    end
  end
  local n = #gone_ids
  if n == 0 then return end
  local kept = {{}, {}, {}}
  if n < #held then
    for i = 1, #held do
      if not gone[i] then
        local k = #kept[1] + 1
        kept[1][k], kept[2][k], kept[3][k] = held[i], counts[i], payloads[i]
      end
    end
  end
  batch_store(Q, b, #held, runs, kept[1], kept[2], kept[3], consumer)
end

-- The ack of the whole batch b, which a pop delivered as `spec` ('n:id:token') says; whether
-- it was accepted. The first message's (id, token) names one delivery, and a batch never gains
-- messages: holding n, it holds exactly those the pop delivered.
local function ack_whole(b, spec)
  local n, id, token = string.match(spec, '^(%d+):(%d+):(%d+)$')
  if not n then return false end
  local held, counts, _, _, runs = batch_load(Q, b)
  if #held ~= tonumber(n) or held[1] ~= id or tostring(counts[1]) ~= token then return false end
  batch_store(Q, b, #held, runs, {}, {}, {})
  if redis.call('EXISTS', KEYS[10]) == 1 then
    for i = 1, #held, 1000 do
      redis.call('HDEL', KEYS[10], unpack(held, i, math.min(i + 999, #held)))
    end
  end
  return true
end

-- Acks of messages with state of their own: in flight (detached) or recovered, not redelivered.
local function ack_loose(picks, ids, tokens, ok)
  local mine, done, leased_ids = {}, {}, {}
  for j, i in ipairs(picks) do mine[j] = ids[i] end
  local counts = redis.call('HMGET', KEYS[8], unpack(mine))
  local leased = redis.call('ZMSCORE', KEYS[5], unpack(mine))
  for j, i in ipairs(picks) do
    local id = ids[i]
    if counts[j] == tokens[i] and not done[id] then
      if leased[j] then
        ok[i], done[id], leased_ids[#leased_ids + 1] = true, true, id
      elseif redis.call('ZREM', KEYS[6], id) == 1 then
        ok[i], done[id] = true, true
      end
    end
  end
  if #leased_ids > 0 then redis.call('ZREM', KEYS[5], unpack(leased_ids)) end
  local settled = {}
  for id in pairs(done) do settled[#settled + 1] = id end
  if #settled > 0 then
    for _, k in ipairs({7, 8, 9}) do redis.call('HDEL', KEYS[k], unpack(settled)) end
  end
end

-- batch_where finds where each acked message is; then one call or so per batch.
local function ack(ids, tokens)
  if #ids == 0 then return {} end
  local where = batch_where(Q, ids)
  local groups, order, loose, ok = {}, {}, {}, {}
  for i, b in ipairs(where) do
    if b then
      if not groups[b] then groups[b], order[#order + 1] = {}, b end
      table.insert(groups[b], i)
    else
      loose[#loose + 1] = i
    end
  end
  for _, b in ipairs(order) do ack_batch(b, groups[b], ids, tokens, ok) end
  if #loose > 0 then ack_loose(loose, ids, tokens, ok) end
  local acked = {}
  for i, id in ipairs(ids) do
    if ok[i] then acked[#acked + 1] = id end
  end
  -- The reasons hash exists only while some message has a reason: most acks skip it.
  if #acked > 0 and redis.call('EXISTS', KEYS[10]) == 1 then
    for i = 1, #acked, 1000 do
      redis.call('HDEL', KEYS[10], unpack(acked, i, math.min(i + 999, #acked)))
    end
  end
  return acked
end

local ack_ids, ack_tokens, wholes, consumer = {}, {}, {}, nil
for i = 4, #ARGV, 2 do
  local first = ARGV[i]
  if first == '@' then
    consumer = ARGV[i + 1]
  elseif batch_is(first) then
    wholes[#wholes + 1] = i
  else
    ack_ids[#ack_ids + 1], ack_tokens[#ack_tokens + 1] = first, ARGV[i + 1]
  end
end
local acked = ack(ack_ids, ack_tokens)
for _, i in ipairs(wholes) do
  if ack_whole(ARGV[i], ARGV[i + 1]) then acked[#acked + 1] = ARGV[i] else count = 0 end
end

local out = {0, 0, #acked}
for i, id in ipairs(acked) do out[3 + i] = id end
local o = #out  -- the length of out: Lua 5.1's # is not free
local named = o + 1  -- where the batch's name goes, with '@'
if consumer then out[named], o = '', o + 1 end
local bids, bcounts, bpayloads = {}, {}, {}

local function deliver(id, payload, n)
  out[o + 1], out[o + 2], out[o + 3], o = id, payload, n, o + 3
  local k = #bids + 1
  bids[k], bcounts[k], bpayloads[k] = id, n, payload
end

-- The ids push gave the `n` messages at positions taken+1 .. taken+n (false: a raw LPUSH): one
-- HGET per run that one push numbered (see queue_push) or per raw message, not per message.
local function known_ids(n, drained)
  local taken = redis.call('HGET', KEYS[3], 'taken')  -- written by every pop that did not drain
  if not taken and redis.call('EXISTS', KEYS[3]) == 0 then return {} end  -- raw LPUSHes only
  taken = tonumber(taken or '0')
  local ids, p, used, rest = {}, 1, {}, {}
  while p <= n do
    local field = string.format('%d', taken + p)
    local run = redis.call('HGET', KEYS[3], field)
    if run then
      local first, len = string.match(run, '^(%d+):?(%d*)$')
      first, len = tonumber(first), tonumber(len) or 1
      local k = math.min(len, n - p + 1)
      for j = 0, k - 1 do ids[p + j] = string.format('%d', first + j) end
      used[#used + 1] = field
      if k < len and not drained then  -- the rest of the run starts where the next pop takes
        rest = {string.format('%d', taken + p + k), string.format('%d:%d', first + k, len - k)}
      end
      p = p + k
    else
      ids[p], p = false, p + 1
    end
  end
  if drained then  -- nothing left to number: positions start again from 1
    redis.call('DEL', KEYS[3])
  else
    if #used > 0 then redis.call('HDEL', KEYS[3], unpack(used)) end
    redis.call('HSET', KEYS[3], 'taken', string.format('%d', taken + n), unpack(rest))
  end
  return ids
end

-- The first member's score of a zset (false: empty).
local function first_score(zset)
  local first = redis.call('ZRANGE', zset, 0, 0, 'WITHSCORES')
  if not first[2] then return false end
  return tonumber(first[2])
end

local function wait_for(zset)
  local first = first_score(zset)
  if not first then return -1 end
  return math.max(0, first - now)
end

-- Expired leases go back to the delayed set, due now, and are delivered below ahead of anything
-- newer (called when the first lease has ended).
local function recover_expired()
  local ids, counts = leases_take(Q, now, math.max(count, 100), -1)
  local back, dead, reasons = {}, {}, {}
  for i, id in ipairs(ids) do
    if counts[i] >= max then
      dead[#dead + 1], dead[#dead + 2] = now, id
      reasons[#reasons + 1] = id
      reasons[#reasons + 1] = 'max deliveries (' .. ARGV[3] .. ') reached: lease expired'
    else
      back[#back + 1], back[#back + 2] = now, id
    end
  end
  if #back > 0 then redis.call('ZADD', KEYS[6], unpack(back)) end
  if #dead > 0 then
    redis.call('ZADD', KEYS[11], unpack(dead))
    redis.call('HSET', KEYS[10], unpack(reasons))
    retention_trim(KEYS[11], KEYS[12], 'dropped', {KEYS[7], KEYS[8], KEYS[10]}, now)
  end
end

-- A look at the first lease and at the first delayed message first: most calls find neither
-- due, and then those looks are also what the reply's waits need. lease1, delay1: their
-- scores (false: none), or nil where something changed since (then read again at the end).
local lease1, delay1 = nil, nil
if count > 0 then
  lease1 = first_score(KEYS[5])
  if lease1 and lease1 <= now then
    recover_expired()
    lease1 = nil
  end
  delay1 = first_score(KEYS[6])  -- after the recovery, which puts what it takes there
end

-- Due delayed messages join the batch: their payload and count fields move into it.
local due = {}
if delay1 and delay1 <= now then
  due = redis.call('ZRANGEBYSCORE', KEYS[6], '-inf', now, 'LIMIT', 0, count)
  delay1 = nil
end
if #due > 0 then
  redis.call('ZREM', KEYS[6], unpack(due))
  local payloads = redis.call('HMGET', KEYS[7], unpack(due))
  local counts = redis.call('HMGET', KEYS[8], unpack(due))
  redis.call('HDEL', KEYS[7], unpack(due))
  redis.call('HDEL', KEYS[8], unpack(due))
  for i, id in ipairs(due) do
    if payloads[i] then deliver(id, payloads[i], tonumber(counts[i] or 0) + 1) end
  end
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
  for i, payload in ipairs(fresh) do
    if not ids[i] then
      next_id = next_id + 1
      ids[i] = string.format('%d', next_id)
    end
    deliver(ids[i], payload, 1)
  end
end

if #bids > 0 then
  local b = batch_open(Q, now, now + lease, bids, bcounts, bpayloads, consumer)
  if consumer then out[named] = b end
  if lease1 ~= nil then lease1 = math.min(lease1 or now + lease, now + lease) end
end

-- The ms until the first of a zset whose first score is `first` (see lease1), -1: none.
local function wait(first, zset)
  if first == nil then return wait_for(zset) end
  if not first then return -1 end
  return math.max(0, first - now)
end
out[1], out[2] = wait(delay1, KEYS[6]), wait(lease1, KEYS[5])
return out
