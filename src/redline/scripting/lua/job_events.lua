-- job_events: append job state changes to a queue's capped event stream, and keep each job's
-- status hash (what `Job.status()` reads) in step with them, atomically.
-- KEYS[1] the queue's event stream   KEYS[2..n+1] the status hash of each event's job, in order
-- ARGV[1] the stream's approximate cap (MAXLEN ~)
-- ARGV[2..] 8 per event: job id, event, state ("" keeps the state), attempt, task,
--   progress ("" when none), message, ttl (seconds the status hash lives from now; 0 deletes it;
--   -1 leaves it alone: a later event of the batch deletes it)
-- Returns the stream ids of the appended events.
-- include _job_event.lua
local out = {}
for i = 0, (#ARGV - 1) / 8 - 1 do
  local a = 2 + i * 8
  local event, ttl, status = ARGV[a + 1], tonumber(ARGV[a + 7]), KEYS[2 + i]
  local E = event_at(a)
  local id, ms = event_append(KEYS[1], ARGV[1], E)
  out[#out + 1] = id
  if ttl == 0 then
    redis.call('DEL', status)
  elseif ttl < 0 then
    -- superseded within this batch
  elseif event == 'enqueued' and redis.call('EXISTS', status) == 1 then
    -- a replaced job's enqueued event follows its push: a worker's state is newer, keep it
  else
    event_status(status, ms, E)
  end
end
return out
