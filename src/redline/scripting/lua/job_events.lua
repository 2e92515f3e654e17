-- job_events: append job state changes to a queue's capped event stream, and keep each job's
-- status hash (what `Job.status()` reads) in step with them, atomically.
-- KEYS[1] the queue's event stream   KEYS[2..n+1] the status hash of each event's job, in order
-- ARGV[1] the stream's approximate cap (MAXLEN ~)
-- ARGV[2..] 8 per event: job id, event, state ("" keeps the state), attempt, task,
--   progress ("" when none), message, ttl (seconds the status hash lives from now; 0 deletes it;
--   -1 leaves it alone: a later event of the batch deletes it)
-- Returns the stream ids of the appended events.
local cap, now = ARGV[1], redis.call('TIME')
local ms = string.format('%d', tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000))
local out = {}
for i = 0, (#ARGV - 1) / 8 - 1 do
  local a = 2 + i * 8
  local job, event, state, attempt = ARGV[a], ARGV[a + 1], ARGV[a + 2], ARGV[a + 3]
  local task, progress, message, ttl = ARGV[a + 4], ARGV[a + 5], ARGV[a + 6], tonumber(ARGV[a + 7])
  local fields = {'job', job, 'event', event, 'attempt', attempt, 'task', task}
  if progress ~= '' then fields[#fields + 1], fields[#fields + 2] = 'progress', progress end
  if message ~= '' then fields[#fields + 1], fields[#fields + 2] = 'message', message end
  out[#out + 1] = redis.call('XADD', KEYS[1], 'MAXLEN', '~', cap, '*', unpack(fields))
  local status = KEYS[2 + i]
  if ttl == 0 then
    redis.call('DEL', status)
  elseif ttl < 0 then
    -- superseded within this batch
  elseif event == 'enqueued' and redis.call('EXISTS', status) == 1 then
    -- a unique job's enqueued event follows its push: a worker's state is newer, keep it
  else
    local set = {'updated_at', ms, 'attempts', attempt, 'task', task, 'last_event', event}
    if state ~= '' then set[#set + 1], set[#set + 2] = 'state', state end
    if event == 'enqueued' then set[#set + 1], set[#set + 2] = 'enqueued_at', ms end
    if event == 'started' then set[#set + 1], set[#set + 2] = 'started_at', ms end
    if progress ~= '' then set[#set + 1], set[#set + 2] = 'progress', progress end
    if message ~= '' then set[#set + 1], set[#set + 2] = 'message', message end
    if state == 'complete' or state == 'dead' or state == 'cancelled' or state == 'expired' then
      set[#set + 1], set[#set + 2] = 'finished_at', ms
    end
    redis.call('HSET', status, unpack(set))
    redis.call('EXPIRE', status, ttl)
  end
end
return out
