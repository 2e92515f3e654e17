-- _job_enqueued: included by job_enqueue and (through _job_event.lua) by the other scripts
-- that record job events: what an `enqueued` event writes into a job's status hash. Apart
-- from _job_event.lua so that a single enqueue, run as EVALSHA, makes no closure for helpers
-- it does not use (each costs the server a few hundred instructions per call).

-- The ms part of a stream id (the server's clock, never behind the stream's last entry): the
-- time a status hash records for its event, so both say the same without a TIME call.
local function id_ms(id)
  return string.match(id, '^%d+')
end

-- Writes the `enqueued` event's status (state "waiting" or "scheduled", times in `ms`) into a
-- job's `status` hash, living `ttl` seconds: one HSET of two fields and one EXPIRE, no table.
-- The reader (`job_status`) takes a hash without `last_event`, `updated_at` or `attempts` as
-- one only enqueued: "enqueued", `enqueued_at`, 0 (every later event writes all three). The
-- task is in the job's events, not in its status (which `JobStatus` does not carry).
local function enqueued_status(status, ms, state, ttl)
  redis.call('HSET', status, 'state', state, 'enqueued_at', ms)
  redis.call('EXPIRE', status, ttl)
end
