-- _pop.lua: queue_pop's helpers (`-- include _pop.lua`), apart from its body because they use
-- no state of one call but the queue's keys, passed in Q (a table of them: _batch.lua's, and
-- ids, delayed, reasons): the library defines them once at its top level, so that a pop makes
-- no closure of each (scripting/functions.py). Needs _batch.lua.

-- Acks of messages a batch holds: the whole batch acked at once closes it without rewriting.
local function ack_batch(Q, b, picks, ids, tokens, ok)
  local held, counts, payloads, consumer, runs, since = batch_load(Q, b, true)
  local at, gone, gone_ids = {}, {}, {}
  for i, id in ipairs(held) do at[id] = i end
  for _, i in ipairs(picks) do
    local p = at[ids[i]]
    if p and not gone[p] and tostring(counts[p]) == tokens[i] then
      gone[p], ok[i] = true, true
      gone_ids[#gone_ids + 1] = ids[i]
    end
  end
  local n = #gone_ids
  if n == 0 then return end
  local kept = batch_kept(held, counts, payloads, gone)
  batch_store(Q, b, #held, runs, kept[1], kept[2], kept[3], consumer, since)
end

-- Drops the failure reasons of acked `ids`. The reasons hash exists only while some message
-- has a reason: most acks skip it.
local function reasons_forget(Q, ids)
  if #ids > 0 and redis.call('EXISTS', Q.reasons) == 1 then
    for i = 1, #ids, 1000 do
      redis.call('HDEL', Q.reasons, unpack(ids, i, math.min(i + 999, #ids)))
    end
  end
end

-- Whether b is the batch of one a pop named after the delivery `spec` says ('1:id:token', see
-- _batch.lua): then it holds exactly that delivery while it is open.
local function alone_named(b, spec)
  return string.sub(spec, 1, 2) == '1:' and b == 'b' .. string.sub(spec, 2)
end

-- The ack of the whole batch b, which a pop delivered as `spec` ('n:id:token') says; whether
-- it was accepted (see batch_intact). A batch of one named after its delivery is closed by
-- name: its lease's ZREM answers whether it was still open, and no record is read.
local function ack_whole(Q, b, spec)
  if alone_named(b, spec) then
    if redis.call('ZREM', Q.inflight, b) == 0 then return false end
    redis.call('HDEL', Q.batches, b)
    if string.sub(spec, -2) ~= ':1' then  -- delivered again: maybe a reason (see below)
      reasons_forget(Q, {string.match(spec, '^1:(%d+):')})
    end
    return true
  end
  local held, first, _, again, runs, since = batch_intact(Q, b, spec)
  if not held then return false end
  batch_store(Q, b, held, runs, NONE, NONE, NONE, nil, since)
  -- A reason is written only for a message given back (a nack, an expiry), which comes back
  -- with a second delivery at least (a dead letter requeued loses it): first deliveries need
  -- no look.
  if again then reasons_forget(Q, #runs > 0 and batch_ids(runs) or {first}) end
  return true
end

-- Acks of messages with state of their own: in flight (detached) or recovered, not redelivered.
local function ack_loose(Q, picks, ids, tokens, ok)
  local mine, done, leased_ids = {}, {}, {}
  for j, i in ipairs(picks) do mine[j] = ids[i] end
  local counts = redis.call('HMGET', Q.deliveries, unpack(mine))
  local leased = redis.call('ZMSCORE', Q.inflight, unpack(mine))
  for j, i in ipairs(picks) do
    local id = ids[i]
    if counts[j] == tokens[i] and not done[id] then
      if leased[j] then
        ok[i], done[id], leased_ids[#leased_ids + 1] = true, true, id
      elseif redis.call('ZREM', Q.delayed, id) == 1 then
        ok[i], done[id] = true, true
      end
    end
  end
  if #leased_ids > 0 then redis.call('ZREM', Q.inflight, unpack(leased_ids)) end
  local settled = {}
  for id in pairs(done) do settled[#settled + 1] = id end
  if #settled > 0 then
    for _, hash in ipairs({Q.payloads, Q.deliveries, Q.since}) do
      redis.call('HDEL', hash, unpack(settled))
    end
  end
end

-- batch_where finds where each acked message is; then one call or so per batch.
local function pop_ack(Q, ids, tokens)
  if #ids == 0 then return {} end
  local where = batch_where(Q, ids, tokens)
  local groups, order, loose, ok = {}, {}, {}, {}
  for i, b in ipairs(where) do
    if b then
      if not groups[b] then groups[b], order[#order + 1] = {}, b end
      table.insert(groups[b], i)
    else
      loose[#loose + 1] = i
    end
  end
  for _, b in ipairs(order) do ack_batch(Q, b, groups[b], ids, tokens, ok) end
  if #loose > 0 then ack_loose(Q, loose, ids, tokens, ok) end
  local acked = {}
  for i, id in ipairs(ids) do
    if ok[i] then acked[#acked + 1] = id end
  end
  reasons_forget(Q, acked)
  return acked
end

-- The ids hash's 'taken' (a number) and the fields already read (field -> run, false: none);
-- nil when there is no ids hash (raw LPUSHes only). A pop that drains the lists mostly finds
-- 'taken' at 0 (queue_push writes it so in the hash it makes after a drain), so it reads the
-- field of position 1 with it, in one call. (HGETALL would read them all, but docs/acl.md's
-- users may not run it.)
local function ids_fields(Q, drained)
  local taken, read = nil, NONE
  if drained then
    local got = redis.call('HMGET', Q.ids, 'taken', '1')
    taken = got[1]
    if not taken or taken == '0' then read = {['1'] = got[2]} end
  else
    taken = redis.call('HGET', Q.ids, 'taken')  -- written first by queue_push
  end
  if not taken and not read['1'] and redis.call('EXISTS', Q.ids) == 0 then return nil end
  return (taken or 0) + 0, read
end

-- The ids push gave the `n` messages at positions taken+1 .. taken+n, as numbers (false: a raw
-- LPUSH): one HGET per run that one push numbered (see queue_push) or per raw message, not per
-- message (but the first, when ids_fields read it).
local function known_ids(Q, n, drained)
  local taken, read = ids_fields(Q, drained)
  if not taken then return {} end  -- raw LPUSHes only
  local ids, p, used, rest = {}, 1, {}, NONE
  while p <= n do
    local field = string.format('%d', taken + p)
    local run = read[field]
    if run == nil then run = redis.call('HGET', Q.ids, field) end
    if run then
      local first, len, colon = run, 1, string.find(run, ':', 1, true)  -- '<id>' or '<id>:<n>'
      if colon then first, len = string.sub(run, 1, colon - 1), string.sub(run, colon + 1) + 0 end
      first = first + 0  -- (numbers by arithmetic: no C call, as tonumber or math.min would be)
      local k = n - p + 1
      if len < k then k = len end
      for j = 0, k - 1 do ids[p + j] = first + j end
      used[#used + 1] = field
      if k < len and not drained then  -- the rest of the run starts where the next pop takes
        rest = {string.format('%d', taken + p + k), string.format('%d:%d', first + k, len - k)}
      end
      p = p + k
    else
      ids[p], p = false, p + 1
    end
  end
  if drained then  -- nothing left to number: positions start again from 1
    redis.call('DEL', Q.ids)
  else
    if #used == 1 then  -- (the usual case: one run, no unpack)
      redis.call('HDEL', Q.ids, used[1])
    elseif #used > 0 then
      redis.call('HDEL', Q.ids, unpack(used))
    end
    if rest == NONE then  -- (no unpack of it: a C call)
      redis.call('HSET', Q.ids, 'taken', string.format('%d', taken + n))
    else
      redis.call('HSET', Q.ids, 'taken', string.format('%d', taken + n), rest[1], rest[2])
    end
  end
  return ids
end

-- The first member's score of a zset (false: empty).
local function first_score(zset)
  local first = redis.call('ZRANGE', zset, 0, 0, 'WITHSCORES')
  if not first[2] then return false end
  return first[2] + 0
end

-- The ms from `now` until the first member of `zset` is due (-1: none).
local function wait_for(zset, now)
  local first = first_score(zset)
  if not first then return -1 end
  return math.max(0, first - now)
end

-- The same, for a zset whose first score the caller knows as `first`: false for none, nil where
-- something changed since its look (then it looks again).
local function wait_ms(first, zset, now)
  if first == nil then return wait_for(zset, now) end
  if not first then return -1 end
  return math.max(0, first - now)
end

-- Expired leases go back to the delayed set, due now, and are delivered below ahead of anything
-- newer (called when the first lease has ended): up to `limit`,
-- those past `max` deliveries (`max_text`, as the caller gave it) to the dead letters.
local function recover_expired(Q, now, limit, max, max_text)
  local ids, counts = leases_take(Q, now, limit, -1)
  local back, dead, reasons = {}, {}, {}
  for i, id in ipairs(ids) do
    if counts[i] >= max then
      dead[#dead + 1], dead[#dead + 2] = now, id
      reasons[#reasons + 1] = id
      reasons[#reasons + 1] = 'max deliveries (' .. max_text .. ') reached: lease expired'
    else
      back[#back + 1], back[#back + 2] = now, id
    end
  end
  if #back > 0 then redis.call('ZADD', Q.delayed, unpack(back)) end
  if #dead > 0 then
    redis.call('ZADD', Q.dead, unpack(dead))
    redis.call('HSET', Q.reasons, unpack(reasons))
    retention_trim(Q.dead, Q.retention, 'dropped', {Q.payloads, Q.deliveries, Q.reasons}, now)
  end
end
