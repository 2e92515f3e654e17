-- job_events: append job state changes to a queue's capped event stream, and keep each job's
-- status hash (what `Job.status()` reads) in step with them, atomically.
-- KEYS[1] the queue's event stream   KEYS[2..n+1] the status hash of each event's job, in order
-- ARGV[1] the stream's approximate cap (MAXLEN ~)
-- ARGV[2..] 8 per event: job id, event, state ("" keeps the state), attempt, task,
--   progress ("" when none), message, ttl (seconds the status hash lives from now; 0 deletes it;
--   -1 leaves it alone: a later event of the batch deletes it)
-- Returns the stream ids of the appended events.
-- include _job_event.lua
local out, stream, n = {}, KEYS[1], (#ARGV - 1) / 8
local cap = n == 1 and ARGV[1]  -- one event: capped by its XADD; more: one XTRIM after them
for i = 1, n do
  out[i] = event_write(stream, cap, KEYS[1 + i], 2 + (i - 1) * 8)
end
if not cap then events_trim(stream, ARGV[1]) end
return out
