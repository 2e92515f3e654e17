-- queue_view: a page of a queue's in-flight, delayed or dead messages, in score order (the
-- messages leased with one batch, _batch.lua, in id order).
-- KEYS[1] inflight zset (lease deadline)   KEYS[2] delayed zset (due)   KEYS[3] dead zset (died)
-- KEYS[4] payloads hash   KEYS[5] deliveries hash   KEYS[6] since hash   KEYS[7] reasons hash
-- KEYS[8] batches hash
-- ARGV[1] start (0-based)   ARGV[2] count   ARGV[3] which zset: 1, 2 or 3
-- ARGV[4] (optional) '1': each row also says its consumer
-- Returns {now, id1, payload1, deliveries1, score1, since1, reason1, [consumer1,] ...} (times in
-- ms; since is 0 when the message is not in flight; consumer: who popped it, when its pop named
-- one and it is still in that pop's batch, else '').
-- include _batch.lua
local Q = {batches = KEYS[8], since = KEYS[6]}
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local start, count = tonumber(ARGV[1]), tonumber(ARGV[2])
local out, skipped = {now}, 0
local width = ARGV[4] == '1' and 7 or 6

local function add(id, payload, deliveries, score, since, consumer)
  if skipped < start then
    skipped = skipped + 1
    return
  end
  out[#out + 1] = id
  out[#out + 1] = payload or ''
  out[#out + 1] = tonumber(deliveries or 0)
  out[#out + 1] = tonumber(score)
  out[#out + 1] = tonumber(since or 0)
  out[#out + 1] = redis.call('HGET', KEYS[7], id) or ''
  if width == 7 then out[#out + 1] = consumer or '' end
end

local function full() return #out >= 1 + width * count end

local function add_batch(b, score)
  local ids, counts, payloads, consumer, _, since = batch_load(Q, b, true)
  since = batch_since(Q, b, since)
  local order = {}
  for i = 1, #ids do order[i] = i end
  table.sort(order, function(x, y) return ids[x] < ids[y] end)
  for _, i in ipairs(order) do
    if full() then return end
    add(ids[i], payloads[i], counts[i], score, since, consumer)
  end
end

if ARGV[3] ~= '1' then  -- one member per message
  local zset = KEYS[tonumber(ARGV[3])]
  local page = redis.call('ZRANGE', zset, start, start + count - 1, 'WITHSCORES')
  start = 0
  for i = 1, #page, 2 do
    local id = page[i]
    local fields = {redis.call('HGET', KEYS[4], id), redis.call('HGET', KEYS[5], id)}
    add(id, fields[1], fields[2], page[i + 1], nil)
  end
  return out
end
local rank = 0
while count > 0 and not full() do
  local page = redis.call('ZRANGE', KEYS[1], rank, rank + 99, 'WITHSCORES')
  if #page == 0 then break end
  for i = 1, #page, 2 do
    if full() then break end
    local m = page[i]
    if batch_is(m) then
      add_batch(m, page[i + 1])
    else
      local fields = {redis.call('HGET', KEYS[4], m), redis.call('HGET', KEYS[5], m)}
      add(m, fields[1], fields[2], page[i + 1], redis.call('HGET', KEYS[6], m))
    end
  end
  rank = rank + 100
end
return out
