-- queue_view: a page of a queue's in-flight, delayed or dead messages, in score order.
-- KEYS[1] inflight zset (lease deadline)   KEYS[2] delayed zset (due)   KEYS[3] dead zset (died)
-- KEYS[4] payloads hash   KEYS[5] deliveries hash   KEYS[6] since hash   KEYS[7] reasons hash
-- ARGV[1] start (0-based)   ARGV[2] count   ARGV[3] which zset: 1, 2 or 3
-- Returns {now, id1, payload1, deliveries1, score1, since1, reason1, ...} (times in ms; since is
-- 0 when the message is not in flight).
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local start = tonumber(ARGV[1])
local zset = KEYS[tonumber(ARGV[3])]
local page = redis.call('ZRANGE', zset, start, start + tonumber(ARGV[2]) - 1, 'WITHSCORES')
local out = {now}
for i = 1, #page, 2 do
  local id = page[i]
  out[#out + 1] = id
  out[#out + 1] = redis.call('HGET', KEYS[4], id) or ''
  out[#out + 1] = tonumber(redis.call('HGET', KEYS[5], id) or 0)
  out[#out + 1] = tonumber(page[i + 1])
  out[#out + 1] = tonumber(redis.call('HGET', KEYS[6], id) or 0)
  out[#out + 1] = redis.call('HGET', KEYS[7], id) or ''
end
return out
