-- _job_event: included (`-- include _job_event.lua`) by the scripts that record job events
-- (job_events, job_enqueue, job_enqueue_many), so an event and the status hash it changes are
-- written as one. An event is job (id), event, state ("" keeps the state), attempt, task,
-- progress ("" when none), message ("" when none) and ttl (seconds the status hash lives; see
-- job_events). The helpers take them as plain arguments (no table per event: a bulk enqueue
-- or a worker's flush writes hundreds per call).

-- Appends an event to `stream`, capped at about `cap` entries (MAXLEN ~) when `cap` is given;
-- returns its stream id. The ms part of that id (`id_ms`: the server's clock, never behind the
-- stream's last entry) is the time the status hash records, so both say the same without a
-- TIME call. A script appending many events passes no cap and trims once (`events_trim`).
local function event_append(stream, cap, job, event, attempt, task, progress, message)
  if progress == '' and message == '' and not cap then  -- most events: no table
    return redis.call('XADD', stream, '*',
      'job', job, 'event', event, 'attempt', attempt, 'task', task)
  end
  local fields = {'job', job, 'event', event, 'attempt', attempt, 'task', task}
  if progress ~= '' then fields[#fields + 1], fields[#fields + 2] = 'progress', progress end
  if message ~= '' then fields[#fields + 1], fields[#fields + 2] = 'message', message end
  if cap then return redis.call('XADD', stream, 'MAXLEN', '~', cap, '*', unpack(fields)) end
  return redis.call('XADD', stream, '*', unpack(fields))
end

-- Caps `stream` at about `cap` entries (MAXLEN ~: whole nodes only, so cheap).
local function events_trim(stream, cap)
  redis.call('XTRIM', stream, 'MAXLEN', '~', cap)
end

local function id_ms(id)
  return string.match(id, '^%d+')
end

local FINAL = {complete = true, dead = true, cancelled = true, expired = true}

-- Writes the `enqueued` event's status (state "waiting" or "scheduled", times in `ms`) into a
-- job's `status` hash, living `ttl` seconds: one HSET of two fields and one EXPIRE, no table.
-- The reader (`job_status`) takes a hash without `last_event`, `updated_at` or `attempts` as
-- one only enqueued: "enqueued", `enqueued_at`, 0 (every later event writes all three). The
-- task is in the job's events, not in its status (which `JobStatus` does not carry).
local function enqueued_status(status, ms, state, ttl)
  redis.call('HSET', status, 'state', state, 'enqueued_at', ms)
  redis.call('EXPIRE', status, ttl)
end

-- Writes an event into the job's `status` hash (times in `ms`), living `ttl` seconds.
local function event_status(status, ms, event, state, attempt, progress, message, ttl)
  if event == 'enqueued' and attempt == '0' and progress == '' and message == '' and state ~= '' then
    return enqueued_status(status, ms, state, ttl)
  end
  local set = {'updated_at', ms, 'attempts', attempt, 'last_event', event}
  if state ~= '' then set[#set + 1], set[#set + 2] = 'state', state end
  if event == 'enqueued' then set[#set + 1], set[#set + 2] = 'enqueued_at', ms end
  if event == 'started' then set[#set + 1], set[#set + 2] = 'started_at', ms end
  if progress ~= '' then set[#set + 1], set[#set + 2] = 'progress', progress end
  if message ~= '' then set[#set + 1], set[#set + 2] = 'message', message end
  if FINAL[state] then set[#set + 1], set[#set + 2] = 'finished_at', ms end
  redis.call('HSET', status, unpack(set))
  redis.call('EXPIRE', status, ttl)
end

-- Writes an event into the job's `status` hash as job_events says (its ttl: 0 deletes the hash,
-- < 0 leaves it alone); an `enqueued` event leaves a status that exists alone (a replaced job's
-- enqueued event follows its push: a worker's state is newer).
local function status_write(status, ms, event, state, attempt, progress, message, ttl)
  if ttl == 0 then
    redis.call('DEL', status)
  elseif ttl < 0 or (event == 'enqueued' and redis.call('EXISTS', status) == 1) then
    return
  else
    event_status(status, ms, event, state, attempt, progress, message, ttl)
  end
end
