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
--   '#', 'runs'            give the deliveries in the short form below (since 2026-12-07)
-- Returns {delayed_wait, lease_wait, n, acked1 .. ackedn, [batch,] id1, payload1, deliveries1,
-- ...}: the waits are the ms until the next delayed message is due and until the next lease
-- expires (0: already; -1: none); then the n acknowledged: the message ids acked one by one and
-- the batches acked whole; then, when '@' was given, the name of the batch delivered ('' when
-- nothing was); then the deliveries. With '#', 'runs' the deliveries are instead, when there
-- are any, {ids, counts, payload1, ..., payloadk}: ids the runs of their ids in order,
-- 'first:last' (or one id alone) joined by ',', counts their delivery counts joined by ',',
-- or one count for all when they are equal (a fresh pop's are all '1'): no id or count per
-- message is made, sent or parsed.
-- include _retention.lua
-- include _batch.lua
-- include _pop.lua
-- (Numbers by arithmetic, not tonumber or math.floor: a C function call each costs a pop of one
-- about as much as the conversion itself.)
local count, lease, max = ARGV[1] + 0, ARGV[2] + 0, ARGV[3] + 0
local clock = redis.call('TIME')
local us = clock[2] + 0
local now = clock[1] * 1000 + (us - us % 1000) / 1000
local Q = {
  ids = KEYS[3], inflight = KEYS[5], delayed = KEYS[6], payloads = KEYS[7], deliveries = KEYS[8],
  since = KEYS[9], reasons = KEYS[10], dead = KEYS[11], retention = KEYS[12], batches = KEYS[13],
  batched = KEYS[14],
}
-- The acks, the ids lookup, the recovery and the waits are _pop.lua's (pop_ack, ack_whole,
-- known_ids, recover_expired, wait_ms): functions of Q, so that a call makes no closure.

local ack_ids, ack_tokens, wholes, consumer, short = {}, {}, {}, nil, false
for i = 4, #ARGV, 2 do
  local first = ARGV[i]
  if first == '@' then
    consumer = ARGV[i + 1]
  elseif first == '#' then
    if ARGV[i + 1] ~= 'runs' then error("queue_pop: '#' takes 'runs', got " .. ARGV[i + 1]) end
    short = true
  elseif batch_is(first) then
    wholes[#wholes + 1] = i
  else
    ack_ids[#ack_ids + 1], ack_tokens[#ack_tokens + 1] = first, ARGV[i + 1]
  end
end
local acked = pop_ack(Q, ack_ids, ack_tokens)
for w = 1, #wholes do  -- (numeric loops here: ipairs is a C call per step)
  local i = wholes[w]
  if ack_whole(Q, ARGV[i], ARGV[i + 1]) then acked[#acked + 1] = ARGV[i] else count = 0 end
end

local out = {0, 0, #acked}
for i = 1, #acked do out[3 + i] = acked[i] end
local o = #out  -- the length of out: Lua 5.1's # is not free
local named = o + 1  -- where the batch's name goes, with '@'
if consumer then out[named], o = '', o + 1 end

-- What this call delivers, in order (k of them): leased as one batch, then put in the reply.
-- (The ids: text for delayed ones; numbers for fresh ones, but where text is needed, below.)
local bids, bcounts, bpayloads, k = {}, {}, {}, 0

-- Which of the in-flight zset (1), the delayed zset (2) and the claim list (4) exist, in one
-- call: EXISTS counts a key once per mention, so naming each that many times answers their sum.
-- Most pops find no lease, no delayed message and no claimed payload, and skip those looks (a
-- look at an absent key costs as much as any call).
local present = redis.call('EXISTS', KEYS[5], KEYS[6], KEYS[6], KEYS[2], KEYS[2], KEYS[2],
  KEYS[2])

-- A look at the first lease and at the first delayed message first: most calls find neither
-- due, and then those looks are also what the reply's waits need. lease1, delay1: their
-- scores (false: none), or nil where something changed since (then read again at the end).
local lease1, delay1 = false, false
if present % 2 == 1 then lease1 = nil end
if present % 4 >= 2 then delay1 = nil end
if count > 0 then
  if lease1 == nil then lease1 = first_score(KEYS[5]) end
  if lease1 and lease1 <= now then
    recover_expired(Q, now, math.max(count, 100), max, ARGV[3])
    lease1, delay1 = nil, nil  -- what it took went to the delayed set
  end
  if delay1 == nil then delay1 = first_score(KEYS[6]) end
end

-- Due delayed messages join the batch: their payload and count fields move into it.
local due = NONE  -- (shared, read only: replaced when something is due)
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
    if payloads[i] then
      k = k + 1
      bids[k], bcounts[k], bpayloads[k] = id, tonumber(counts[i] or 0) + 1, payloads[i]
    end
  end
end

local fresh, want = NONE, count - #due
for i = 2, 1, -1 do  -- the claim list (when there is one), then the waiting list
  local list = KEYS[i]
  if want > 0 and (i == 1 or present >= 4) then
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
  local ids, unknown = known_ids(Q, #fresh, drained), 0
  for i = 1, #fresh do
    if not ids[i] then unknown = unknown + 1 end
  end
  local next_id = 0
  if unknown > 0 then next_id = redis.call('INCRBY', KEYS[4], unknown) - unknown end
  -- Ids as text only for the long reply and a batch of one (named after its message).
  local text = not short or k + #fresh == 1
  for i = 1, #fresh do  -- (not ipairs: a C call per message)
    local payload = fresh[i]
    if not ids[i] then
      next_id = next_id + 1
      ids[i] = next_id
    end
    k = k + 1
    bids[k], bcounts[k], bpayloads[k] = text and string.format('%d', ids[i]) or ids[i], 1, payload
  end
end

local spans = NONE
if k > 0 then
  local b
  b, spans = batch_open(Q, now, now + lease, bids, bcounts, bpayloads, consumer)
  if consumer then out[named] = b end
  if lease1 ~= nil and not (lease1 and lease1 < now + lease) then lease1 = now + lease end
end
if not short then
  for j = 1, k do
    out[o + 1], out[o + 2], out[o + 3], o = bids[j], bpayloads[j], bcounts[j], o + 3
  end
elseif k > 0 then
  local counts = batch_counts(bcounts)
  if type(counts) == 'table' then counts = table.concat(counts, ',') end
  out[o + 1], out[o + 2] = table.concat(spans, ','), string.format('%s', counts)
  for j = 1, k do out[o + 2 + j] = bpayloads[j] end
end

out[1], out[2] = wait_ms(delay1, KEYS[6], now), wait_ms(lease1, KEYS[5], now)
return out
