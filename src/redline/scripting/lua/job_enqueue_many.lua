-- Enqueue a batch of jobs of one queue and priority: unique ones only if no pending job holds
-- their key (a key taken earlier in the same batch counts as held).
-- KEYS[1] the list they wait in (the queue's own list, or its priority's)
-- KEYS[2] the scheduled set of that priority   KEYS[3] the queue's set of priorities used
-- KEYS[4..] unique lock keys
-- ARGV[1] priority (0-9)   ARGV[2] lock ttl (seconds)   ARGV[3] due time (unix seconds; "" = now)
-- ARGV[4..] per job: document, job id, lock (1-based index into KEYS[4..]; 0 = not unique)
-- Returns one string per job: "" when enqueued, else the id of the job that holds its key.
local out, docs = {}, {}
for i = 4, #ARGV, 3 do
  local lock, holder = tonumber(ARGV[i + 2]), false
  if lock > 0 then
    holder = redis.call('GET', KEYS[3 + lock])
    if not holder then redis.call('SET', KEYS[3 + lock], ARGV[i + 1], 'EX', tonumber(ARGV[2])) end
  end
  if holder then
    out[#out + 1] = holder
  else
    out[#out + 1] = ''
    docs[#docs + 1] = ARGV[i]
  end
end
if #docs == 0 then return out end
if ARGV[1] ~= '0' then redis.call('SADD', KEYS[3], ARGV[1]) end
for i = 1, #docs, 1000 do
  local j = math.min(i + 999, #docs)
  if ARGV[3] == '' then
    redis.call('LPUSH', KEYS[1], unpack(docs, i, j))
  else
    local scored = {}
    for k = i, j do scored[#scored + 1] = ARGV[3]; scored[#scored + 1] = docs[k] end
    redis.call('ZADD', KEYS[2], unpack(scored))
  end
end
return out
