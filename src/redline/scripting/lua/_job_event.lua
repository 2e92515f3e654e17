-- _job_event: included (`-- include _job_event.lua`) by the scripts that record job events
-- (job_events, job_enqueue_many), so an event and the status hash it changes are written as
-- one. An event is job (id), event, state ("" keeps the state), attempt, task, progress (""
-- when none), message ("" when none) and ttl (seconds the status hash lives; see job_events).
-- The helpers take them as plain arguments (no table per event: a bulk enqueue or a worker's
-- flush writes hundreds per call). A single enqueue writes its one event itself (job_enqueue).
-- include _job_enqueued.lua

-- Caps `stream` at about `cap` entries (MAXLEN ~: whole nodes only, so cheap). A script
-- appending many events passes no cap to each XADD and trims once.
local function events_trim(stream, cap)
  redis.call('XTRIM', stream, 'MAXLEN', '~', cap)
end

local FINAL = {complete = true, dead = true, cancelled = true, expired = true}

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
