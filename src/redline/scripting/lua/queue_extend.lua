-- queue_extend: renew the leases of deliveries still held (in flight, token current). A batch
-- whose every held message is named with its current token is extended whole (it keeps its
-- consumer, and nothing is written per message); a message named apart from the rest of its
-- batch gets a lease of its own first (_batch.lua).
-- KEYS[1] inflight zset: id or batch -> lease deadline (ms)   KEYS[2] deliveries hash: id -> count
-- KEYS[3] payloads hash   KEYS[4] since hash   KEYS[5] batches hash   KEYS[6] batched zset
-- ARGV[1] lease (ms), then id1, token1, id2, token2, ...
-- Returns one flag per pair, in order: 1 when its lease now ends ARGV[1] ms from the server's now,
-- 0 when it is no longer held (stale token, settled or recovered).
-- include _batch.lua
local Q = {
  inflight = KEYS[1], deliveries = KEYS[2], payloads = KEYS[3], since = KEYS[4],
  batches = KEYS[5], batched = KEYS[6],
}
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local deadline = now + tonumber(ARGV[1])
local ids, tokens = {}, {}
for i = 2, #ARGV, 2 do ids[#ids + 1], tokens[#tokens + 1] = ARGV[i], ARGV[i + 1] end

-- The batches named whole: each held message with its current token.
local where, named, order = batch_where(Q, ids, tokens), {}, {}
for i, b in ipairs(where) do
  if b then
    if not named[b] then named[b], order[#order + 1] = {}, b end
    named[b][ids[i]] = tokens[i]
  end
end
local whole = {}
for _, b in ipairs(order) do
  local held, counts = batch_load(Q, b)
  local all = #held > 0
  for j, id in ipairs(held) do
    if named[b][id] ~= tostring(counts[j]) then all = false break end
  end
  if all then
    redis.call('ZADD', Q.inflight, 'XX', deadline, b)
    whole[b] = true
  end
end
local apart_ids, apart_tokens = {}, {}
for i, b in ipairs(where) do
  if not (b and whole[b]) then
    apart_ids[#apart_ids + 1], apart_tokens[#apart_tokens + 1] = ids[i], tokens[i]
  end
end
batch_detach(Q, apart_ids, apart_tokens)

local kept = {}
for i = 2, #ARGV, 2 do
  local id = ARGV[i]
  local b = where[i / 2]
  kept[#kept + 1] = 0
  if b and whole[b] then
    kept[#kept] = 1
  elseif redis.call('HGET', KEYS[2], id) == ARGV[i + 1] and redis.call('ZSCORE', KEYS[1], id) then
    redis.call('ZADD', KEYS[1], 'XX', deadline, id)
    kept[#kept] = 1
  end
end
return kept
