-- Record members' outcomes in their workflow and say which members became ready to run.
-- The heart of exactly-once progression: an outcome is counted only for a member that is
-- still `waiting`/`dispatched`, so a member run twice (a redelivery after a crash, a lapsed
-- lease) counts once, its second result discarded. A completion counted unblocks its
-- dependants here, in the same script; a repeated one offers again the dependants that are
-- ready but not yet confirmed dispatched (the first run may have died before confirming), and
-- the caller pushes them through `workflow_dispatch`, which pushes each job at most once.
-- A failure marks every member that depends on it, transitively, `skipped`, fails the
-- workflow, and offers its `on_error` member (once; again on a repeated failure until its
-- dispatch is confirmed). Members that do not depend on it go on. Outcomes not counted (a
-- member finished before, skipped or cancelled) are counted in meta's `repeats`.
-- KEYS[1] meta   KEYS[2] spec   KEYS[3] links   KEYS[4] state   KEYS[5] pending
-- KEYS[6] members   KEYS[7] results   KEYS[8] errors   KEYS[9] times
-- ARGV[1] now (unix seconds); then per outcome: member, fencing token (the delivery count),
-- "ok" or "fail", the result (JSON) or the error text.
-- Returns {finished (1 when this call ended the workflow), then per member to dispatch:
-- name, job document template (spec), its input (JSON of what it receives; "" for nothing)}.
local meta, spec, links, state, pending = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local results, errors, times = KEYS[7], KEYS[8], KEYS[9]
if redis.call('EXISTS', meta) == 0 then return {0} end
local now, out, offered = ARGV[1], {0}, {}

local function links_of(m)
  return cjson.decode(redis.call('HGET', links, m) or '{"next":[],"deps":[]}')
end

local function input_of(link)
  if link.mode == 'one' then return redis.call('HGET', results, link.deps[1]) or 'null' end
  if link.mode ~= 'list' then return '' end
  local parts = {}
  for i = 1, #link.deps, 1000 do
    local got = redis.call('HMGET', results, unpack(link.deps, i, math.min(i + 999, #link.deps)))
    for j = 1, #got do parts[#parts + 1] = got[j] or 'null' end
  end
  return '[' .. table.concat(parts, ',') .. ']'
end

local function offer(m, input)
  if offered[m] then return end
  offered[m] = true
  out[#out + 1] = m
  out[#out + 1] = redis.call('HGET', spec, m)
  out[#out + 1] = input
end

local function consider(m)  -- a dependant: offered when nothing it waits for is left
  if redis.call('HGET', state, m) ~= 'waiting' then return end
  if tonumber(redis.call('HGET', pending, m) or '1') > 0 then return end
  offer(m, input_of(links_of(m)))
end

local function consider_on_error()
  local failed = redis.call('HGET', meta, 'error_member')
  if failed and redis.call('HGET', state, 'on_error') == 'waiting' then
    local text = redis.call('HGET', errors, failed) or ''
    local wf = redis.call('HGET', meta, 'id')
    offer('on_error', cjson.encode({workflow = wf, member = failed, error = text}))
  end
end

local function settle(m, to)
  redis.call('HSET', state, m, to)
  redis.call('HSET', times, m .. ':f', now)
  if m ~= 'on_error' then
    redis.call('HINCRBY', meta, 'settled', 1)
    redis.call('HINCRBY', meta, to, 1)
  end
end

local function skip(m)  -- every member that depends on m, transitively
  local todo = {m}
  while #todo > 0 do
    for _, d in ipairs(links_of(table.remove(todo)).next) do
      if redis.call('HGET', state, d) == 'waiting' then
        settle(d, 'skipped')
        todo[#todo + 1] = d
      end
    end
  end
end

local function completed(m, result)
  redis.call('HSET', results, m, result)
  settle(m, 'done')
  for _, d in ipairs(links_of(m).next) do
    if redis.call('HINCRBY', pending, d, -1) == 0 then consider(d) end
  end
end

local function failed(m, text)
  redis.call('HSET', errors, m, text)
  settle(m, 'failed')
  if m == 'on_error' then return end
  skip(m)
  if redis.call('HGET', meta, 'state') == 'running' then
    redis.call('HSET', meta, 'state', 'failed', 'error_member', m)
  end
  consider_on_error()
end

for i = 2, #ARGV, 4 do
  local m, kind, payload = ARGV[i], ARGV[i + 2], ARGV[i + 3]
  local st = redis.call('HGET', state, m)
  if st == 'waiting' or st == 'dispatched' then
    redis.call('HSET', times, m .. ':t', ARGV[i + 1])
    if kind == 'ok' then completed(m, payload) else failed(m, payload) end
  elseif st == 'done' then  -- counted before: offer what that run may have left unconfirmed
    redis.call('HINCRBY', meta, 'repeats', 1)
    for _, d in ipairs(links_of(m).next) do consider(d) end
  elseif st == 'failed' then
    redis.call('HINCRBY', meta, 'repeats', 1)
    consider_on_error()
  elseif st then
    redis.call('HINCRBY', meta, 'repeats', 1)
  end
end

local counts = redis.call('HMGET', meta, 'total', 'settled')
if not redis.call('HGET', meta, 'finished') and tonumber(counts[2] or 0) >= tonumber(counts[1]) then
  redis.call('HSET', meta, 'finished', now)
  if redis.call('HGET', meta, 'state') == 'running' then
    redis.call('HSET', meta, 'state', 'complete')
    if redis.call('HGET', state, 'on_error') == 'waiting' then
      redis.call('HSET', state, 'on_error', 'skipped')
    end
  end
  out[1] = 1
end
if redis.call('HGET', meta, 'finished') then  -- kept `ttl` seconds after the end
  local ttl = tonumber(redis.call('HGET', meta, 'ttl'))
  for _, key in ipairs(KEYS) do
    if redis.call('TTL', key) == -1 then redis.call('EXPIRE', key, ttl) end
  end
end
return out
