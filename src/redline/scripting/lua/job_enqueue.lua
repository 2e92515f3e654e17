-- job_enqueue: put one job on its list (or its scheduled set) and record its `enqueued` event,
-- as one step (one round trip for `enqueue`); a unique job only while no pending job holds its
-- key. Jobs that replace or debounce go through job_replace instead. A plain job (priority 0,
-- not unique) names three keys: no key, argument or C call it does not use.
-- KEYS[1] where it waits: its list (the queue's own, or its priority's), or with a due time
--   the scheduled set of its priority
-- KEYS[2] the queue's event stream   KEYS[3] the job's status hash
-- KEYS[4] the queue's set of priorities used (only when the priority is not 0)
-- then the unique lock key (only for a unique job): KEYS[5] with a priority, else KEYS[4]
-- ARGV[1] job document   ARGV[2] priority (0-9)   ARGV[3] due time (unix seconds; "" = now)
-- ARGV[4] lock ttl (seconds)   ARGV[5] the event stream's approximate cap (MAXLEN ~)
-- ARGV[6] the job's id   ARGV[7] its task   ARGV[8] seconds its status hash lives
-- Returns "" when enqueued, else the id of the pending job that holds the key.
-- include _job_enqueued.lua
local levels = ARGV[2] ~= '0'
local lock = KEYS[levels and 5 or 4]
if lock then
  local holder = redis.call('GET', lock)
  if holder then return holder end
  redis.call('SET', lock, ARGV[6], 'EX', ARGV[4])
end
if levels then redis.call('SADD', KEYS[4], ARGV[2]) end
local state = 'waiting'
if ARGV[3] == '' then
  redis.call('LPUSH', KEYS[1], ARGV[1])
else
  redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
  state = 'scheduled'
end
-- the event's fields as job_events writes one event alone (attempt 0: not yet delivered)
local id = redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[5], '*',
  'job', ARGV[6], 'event', 'enqueued', 'attempt', '0', 'task', ARGV[7])
enqueued_status(KEYS[3], id_ms(id), state, ARGV[8])
return ''
