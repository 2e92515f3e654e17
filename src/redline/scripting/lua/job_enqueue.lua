-- job_enqueue: put one job on its list (or its scheduled set) and record its `enqueued` event,
-- as one step (one round trip for `enqueue`); a unique job only while no pending job holds its
-- key. Jobs that replace or debounce go through job_replace instead.
-- KEYS[1] the list it waits in (the queue's own, or its priority's)
-- KEYS[2] the scheduled set of that priority   KEYS[3] the queue's set of priorities used
-- KEYS[4] the queue's event stream   KEYS[5] the job's status hash
-- KEYS[6] the unique lock key (only for a unique job)
-- ARGV[1] job document   ARGV[2] priority (0-9)   ARGV[3] due time (unix seconds; "" = now)
-- ARGV[4] lock ttl (seconds)   ARGV[5] the event stream's approximate cap (MAXLEN ~)
-- ARGV[6..13] the enqueued event, as job_events takes it (ARGV[6] is the job id)
-- Returns "" when enqueued, else the id of the pending job that holds the key.
-- include _job_event.lua
if KEYS[6] then
  local holder = redis.call('GET', KEYS[6])
  if holder then return holder end
  redis.call('SET', KEYS[6], ARGV[6], 'EX', tonumber(ARGV[4]))
end
if ARGV[2] ~= '0' then redis.call('SADD', KEYS[3], ARGV[2]) end
if ARGV[3] == '' then
  redis.call('LPUSH', KEYS[1], ARGV[1])
else
  redis.call('ZADD', KEYS[2], tonumber(ARGV[3]), ARGV[1])
end
local job, state, attempt, task = ARGV[6], ARGV[8], ARGV[9], ARGV[10]
local id = event_append(KEYS[4], ARGV[5], job, 'enqueued', attempt, task, '', '')
enqueued_status(KEYS[5], id_ms(id), state, tonumber(ARGV[13]))
return ''
