-- Enqueue a batch of jobs of one queue and priority, each with its `enqueued` event (as
-- job_enqueue writes it for one): unique ones only if no pending job holds their key (a key
-- taken earlier in the same batch counts as held; a job not enqueued gets no event).
-- KEYS[1] the list they wait in (the queue's own list, or its priority's)
-- KEYS[2] the scheduled set of that priority   KEYS[3] the queue's set of priorities used
-- KEYS[4] the queue's event stream   KEYS[5..4+n] the status hash of each of the n jobs, in order
-- KEYS[5+n..] unique lock keys
-- ARGV[1] priority (0-9)   ARGV[2] lock ttl (seconds)   ARGV[3] due time (unix seconds; "" = now)
-- ARGV[4] the event stream's approximate cap (MAXLEN ~)   ARGV[5] the jobs' task
-- ARGV[6] their state ("waiting" or "scheduled")   ARGV[7] seconds their status hashes live
-- ARGV[8] events per stream entry (as job_events packs them: `events`, a JSON array of
--   [job, "enqueued", 0, task]; an entry of one event has that event's own fields)
-- ARGV[9..] per job: document, job id, lock (1-based index into the lock keys; 0 = not unique)
-- Returns one string per job: "" when enqueued, else the id of the job that holds its key.
-- include _job_event.lua
local n = (#ARGV - 8) / 3
local out, docs, ids, statuses = {}, {}, {}, {}
for j = 1, n do
  local i = 9 + 3 * (j - 1)
  local lock, holder = tonumber(ARGV[i + 2]), false
  if lock > 0 then
    local key = KEYS[4 + n + lock]
    holder = redis.call('GET', key)
    if not holder then redis.call('SET', key, ARGV[i + 1], 'EX', tonumber(ARGV[2])) end
  end
  if holder then
    out[j] = holder
  else
    out[j] = ''
    local k = #docs + 1
    docs[k], ids[k], statuses[k] = ARGV[i], ARGV[i + 1], KEYS[4 + j]
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
-- The events, packed, and the status hashes at the time of the first (the batch's own time).
local stream, task, pack = KEYS[4], ARGV[5], tonumber(ARGV[8])
local quoted, ms = cjson.encode(task)
for k = 1, #ids, pack do
  local last, id = math.min(k + pack - 1, #ids)
  if last == k then
    id = redis.call('XADD', stream, '*', 'job', ids[k], 'event', 'enqueued', 'attempt', '0',
      'task', task)
  else
    local rows = {}
    for i = k, last do
      rows[#rows + 1] = '[' .. cjson.encode(ids[i]) .. ',"enqueued",0,' .. quoted .. ']'
    end
    id = redis.call('XADD', stream, '*', 'events', '[' .. table.concat(rows, ',') .. ']')
  end
  ms = ms or id_ms(id)
end
local state, ttl = ARGV[6], tonumber(ARGV[7])
for k = 1, #ids do enqueued_status(statuses[k], ms, state, ttl) end
events_trim(stream, ARGV[4])
return out
