-- Admit a delivered job under its task's limits, or put it back to wait (not an attempt).
-- Admitted: it takes a concurrency slot (a member of the slots set scored by its lease
-- deadline, so a killed worker's slot is reclaimed once that passes) and a rate-limit start
-- (a member of the log, scored by the time it started). Refused: it leaves the in-flight set
-- for the delayed set, its delivery count taken back, due when a start frees up (rate) or
-- when the earliest slot's lease ends (concurrency; a release wakes it sooner).
-- KEYS[1] inflight zset   KEYS[2] delayed zset   KEYS[3] deliveries hash   KEYS[4] since hash
--         (all four of the key the job was delivered from)
-- KEYS[5] concurrency slots zset: id -> lease deadline (ms)
-- KEYS[6] concurrency waiters list: "<priority>:<id>:<delivery count>"
-- KEYS[7] rate log zset: "<id>:<delivery count>" -> start (ms)
-- KEYS[8] rate spreading: ms when the next refused job is due
-- KEYS[9] the queue's registry of limits in use (zset: member -> ms last registered)
-- KEYS[10] payloads hash   KEYS[11] batches hash   KEYS[12] batched hash (of the queue the job
--          was delivered from: a job leased with its batch gets a lease of its own first,
--          see _batch.lua)
-- ARGV[1] id   ARGV[2] delivery count (token)   ARGV[3] lease (ms)
-- ARGV[4] concurrency cap (0: none)   ARGV[5] starts per period (0: none)   ARGV[6] period (ms)
-- ARGV[7] the priority of the key it was delivered from
-- ARGV[8], ARGV[9] registry members of its concurrency and rate limits to (re)register, or ""
--         (workers send them when they first meet a limit, then once a minute); members not
--         registered for ARGV[10] ms are dropped
-- Returns {1} admitted, {0, ms until due, "concurrency"|"rate"} put back, {-1} not held (stale).
-- include _batch.lua
local id, token = ARGV[1], ARGV[2]
batch_detach({
  inflight = KEYS[1], deliveries = KEYS[3], since = KEYS[4], payloads = KEYS[10],
  batches = KEYS[11], batched = KEYS[12],
}, {id}, {ARGV[2]})
if redis.call('HGET', KEYS[3], id) ~= token or not redis.call('ZSCORE', KEYS[1], id) then
  return {-1}
end
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local cap, rate, period = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])

if ARGV[8] ~= '' or ARGV[9] ~= '' then
  for i = 8, 9 do
    if ARGV[i] ~= '' then redis.call('ZADD', KEYS[9], now, ARGV[i]) end
  end
  redis.call('ZREMRANGEBYSCORE', KEYS[9], '-inf', now - tonumber(ARGV[10]))
end

local function put_back(due, why)
  redis.call('ZREM', KEYS[1], id)
  redis.call('HINCRBY', KEYS[3], id, -1)
  redis.call('HDEL', KEYS[4], id)
  redis.call('ZADD', KEYS[2], due, id)
  return {0, due - now, why}
end

if cap > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', now)
  if not redis.call('ZSCORE', KEYS[5], id) and redis.call('ZCARD', KEYS[5]) >= cap then
    local first = redis.call('ZRANGE', KEYS[5], 0, 0, 'WITHSCORES')
    redis.call('RPUSH', KEYS[6], ARGV[7] .. ':' .. id .. ':' .. (tonumber(token) - 1))
    redis.call('PEXPIRE', KEYS[6], 2 * tonumber(ARGV[3]))
    return put_back(tonumber(first[2]), 'concurrency')
  end
end
if rate > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[7], '-inf', now - period)
  if redis.call('ZCARD', KEYS[7]) >= rate then
    local first = redis.call('ZRANGE', KEYS[7], 0, 0, 'WITHSCORES')
    local due = math.max(tonumber(first[2]) + period, tonumber(redis.call('GET', KEYS[8]) or 0))
    local step = math.max(1, math.floor(period / rate))
    redis.call('SET', KEYS[8], due + step, 'PX', due + step - now + period)
    return put_back(due, 'rate')
  end
  redis.call('ZADD', KEYS[7], now, id .. ':' .. token)
  redis.call('PEXPIRE', KEYS[7], period)
end
if cap > 0 then redis.call('ZADD', KEYS[5], now + tonumber(ARGV[3]), id) end
return {1}
