-- _job_event: included (`-- include _job_event.lua`) by the scripts that record job events
-- (job_events, job_enqueue), so an event and the status hash it changes are written as one.
-- An event is a table E: job (id), event, state ("" keeps the state), attempt, task, progress
-- ("" when none), message, ttl (seconds the status hash lives; see job_events). Callers pass
-- them as 8 ARGV from index `a`, in that order (`event_at`), or build them (job_enqueue_many).

local function event_at(a)
  return {
    job = ARGV[a], event = ARGV[a + 1], state = ARGV[a + 2], attempt = ARGV[a + 3],
    task = ARGV[a + 4], progress = ARGV[a + 5], message = ARGV[a + 6], ttl = ARGV[a + 7],
  }
end

-- Appends event E to `stream` (capped at about `cap`); returns its stream id and
-- the ms part of that id (the server's clock, never behind the stream's last entry): the time
-- the status hash records, so both say the same without a TIME call.
local function event_append(stream, cap, E)
  local fields = {'job', E.job, 'event', E.event, 'attempt', E.attempt, 'task', E.task}
  if E.progress ~= '' then fields[#fields + 1], fields[#fields + 2] = 'progress', E.progress end
  if E.message ~= '' then fields[#fields + 1], fields[#fields + 2] = 'message', E.message end
  local id = redis.call('XADD', stream, 'MAXLEN', '~', cap, '*', unpack(fields))
  return id, string.match(id, '^%d+')
end

-- Writes event E into the job's `status` hash (times in `ms`), living its ttl.
local function event_status(status, ms, E)
  local event, state, attempt, task = E.event, E.state, E.attempt, E.task
  local progress, message = E.progress, E.message
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
  redis.call('EXPIRE', status, tonumber(E.ttl))
end
