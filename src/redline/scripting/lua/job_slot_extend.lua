-- Extend the concurrency slots of running jobs to a new lease deadline (the heartbeat).
-- KEYS[1] concurrency slots zset: id -> lease deadline (ms)
-- ARGV[1] lease (ms)   ARGV[2..] the ids of the jobs holding slots
-- Returns how many slots were still held (one reclaimed meanwhile is not taken back).
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local kept = 0
for i = 2, #ARGV do
  kept = kept + redis.call('ZADD', KEYS[1], 'XX', 'CH', now + tonumber(ARGV[1]), ARGV[i])
end
return kept
