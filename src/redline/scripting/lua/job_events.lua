-- job_events: append job state changes to a queue's capped event stream, and keep each job's
-- status hash (what `Job.status()` reads) in step with them, atomically. The events go in
-- entries of one or more (a worker's batch: `events`, packed by the caller), so the stream
-- costs the server one XADD per entry, not per event; the statuses take the time of the first.
-- KEYS[1] the queue's event stream
-- KEYS[2..w+1] the status hash of each status write, in order
-- KEYS[w+2..] status hashes to delete (finished jobs that keep no status)
-- ARGV[1] the stream's approximate cap in entries (MAXLEN ~)   ARGV[2] e, the entries
-- then per entry: its field count f, then its f fields and values (as XADD takes them)
-- then w, the status writes; per write 6 values: event, state ("" keeps the state), attempt,
--   progress ("" when none), message ("" when none), ttl (seconds the status hash lives from
--   now; 0 deletes it; -1 leaves it alone)
-- Returns the stream ids of the appended entries.
-- include _job_event.lua
local out, stream, cap, a = {}, KEYS[1], ARGV[1], 3
for e = 1, tonumber(ARGV[2]) do
  local f = tonumber(ARGV[a])
  out[e] = redis.call('XADD', stream, 'MAXLEN', '~', cap, '*', unpack(ARGV, a + 1, a + f))
  a = a + 1 + f
end
local ms, w = id_ms(out[1]), tonumber(ARGV[a])
for i = 1, w do
  local b = a + 1 + (i - 1) * 6
  status_write(KEYS[1 + i], ms, ARGV[b], ARGV[b + 1], ARGV[b + 2], ARGV[b + 3], ARGV[b + 4],
    tonumber(ARGV[b + 5]))
end
if #KEYS > w + 1 then redis.call('DEL', unpack(KEYS, w + 2)) end
return out
