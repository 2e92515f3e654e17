-- _batch.lua: included (`-- include _batch.lua`) by the scripts that touch in-flight messages.
-- A pop leases everything it delivers as one batch `b` (named after the server time; see below
-- for a batch of one):
--   inflight zset   b -> the batch's lease deadline (ms)
--   batches hash    b -> cmsgpack.pack({ids, counts, payloads, consumer, runs, since}) of the
--                   messages it still holds (consumer: who popped it, '' when the pop named
--                   none; runs: the members of `batched` that index it; since: when it was
--                   delivered, ms — a batch leased before 2026-12-07 noon has no since in
--                   its record but a field in the since hash). Since 2026-12-07 afternoon
--                   a batch with runs keeps in its record, instead of its ids, how many it
--                   holds (its ids are those of its runs, in order: batch_ids), its counts
--                   as one number when all are equal, and false for its payloads, which it
--                   keeps apart, 'p' .. b -> cmsgpack.pack(payloads): a pop then makes no
--                   text of each id, and the ack of a whole batch (batch_head), like the
--                   readers that want no payloads, unpacks none. And 'extra' -> how many
--                   messages the batches hold beyond one each, so that the number in flight
--                   is ZCARD inflight + extra (no HLEN: docs/acl.md's users may not run it)
--   batched zset    'first:last:b' -> first, for each run of consecutive ids (first, first+1,
--                   ... last) that b holds: how a message is found by its id (batch_where), one
--                   member per run rather than a field per message (pushes number their
--                   payloads consecutively, so a pop's fresh messages are a run or a few)
-- so a pop, and the ack of its whole batch, write three fields and members per batch and none
-- per message.
-- A pop that delivers one message names its batch after that delivery, 'b:<id>:<token>' (its
-- delivery count: the fencing token), and indexes it with no run (two entries, then):
-- batch_where finds such a batch by its name, and the ack of the whole batch needs no read of
-- its record (see _pop.lua's alone_named). Batches of one leased before 2026-12-07 evening
-- are named 'b:<id>' and are found and acked as before. (A batch of one has nothing to split,
-- so it never needs a run; a batch of more that shrinks to one keeps its name and runs.) A
-- message leaves its batch when it is acked, or when it needs state of its own: an extend, a
-- nack, a recovery or a job's admission first take it out (batch_detach,
-- leases_take), giving it the per-message layout that every script also understands: payloads,
-- deliveries (its count, the fencing token) and since fields, and its own member of the
-- inflight zset. Runs never overlap: each covers ids its batch holds, rewritten whenever the
-- batch changes.
-- Q is a table of the queue's keys: inflight, since, payloads, deliveries, batches, batched.

-- An empty list, read only and shared (no table made per call): what a batch closed whole
-- keeps, a pop's nothing due or taken yet. Shared across calls: never write to it.
local NONE = {}

local function batch_is(member)
  return string.byte(member, 1) == 98  -- 'b': message ids are digits
end

local DIGITS = {[0] = '0', '1', '2', '3', '4', '5', '6', '7', '8', '9'}

-- Appends the ids first .. last, as text, to `out`: a string.format per ten ids, a
-- concatenation for each (half the instructions of a string.format each).
local function ids_text(first, last, out)
  local n, prefix = #out, nil
  for id = first, last do
    local d = id % 10
    if d == 0 or not prefix then
      local tens = (id - d) / 10
      prefix = tens > 0 and string.format('%d', tens) or ''
    end
    n = n + 1
    out[n] = prefix .. DIGITS[d]
  end
  return out
end

-- The ids of a batch's runs (members of `batched`, 'first:last:b'), in order.
local function batch_ids(runs)
  local ids = {}
  for _, m in ipairs(runs) do
    local first, last = string.match(m, '^(%d+):(%d+):')
    ids_text(tonumber(first), tonumber(last), ids)
  end
  return ids
end

-- How many messages batch b holds, the first one's id and count, whether any was delivered
-- more than once, and its runs and since, without reading its ids (unless its record lists
-- them) or its payloads: the ack of a whole batch. nil when there is no batch b.
local function batch_head(Q, b)
  local blob = redis.call('HGET', Q.batches, b)
  if not blob then return nil end
  local t = cmsgpack.unpack(blob)
  local n, first, runs = t[1], nil, t[5] or NONE
  if t[3] == false then  -- payloads apart: how many, not ids (no type() call: it makes a string)
    first = string.match(runs[1], '^(%d+):')
    if type(t[2]) == 'number' then return n, first, t[2], t[2] > 1, runs, t[6] end
  else
    n, first = #n, n[1]
  end
  local counts, again = t[2], false
  for i = 1, #counts do
    if counts[i] > 1 then again = true break end
  end
  return n, first, counts[1], again, runs, t[6]
end

-- batch_head's values when batch b still holds exactly what a pop delivered as `spec`
-- ('n:id:token': Batch.whole), else nil. The first message's (id, token) names one delivery, and
-- a batch never gains messages: holding n, it holds exactly those the pop delivered, each with
-- the delivery count the pop gave it.
local function batch_intact(Q, b, spec)
  local n, id, token = string.match(spec, '^(%d+):(%d+):(%d+)$')
  if not n then return nil end
  local held, first, count, again, runs, since = batch_head(Q, b)
  if held ~= tonumber(n) or first ~= id or tostring(count) ~= token then return nil end
  return held, first, count, again, runs, since
end

-- ids, counts, payloads, consumer, runs and since (nil: in the since hash, see above) of what
-- batch b holds. Payloads kept apart are read only `with_payloads` (else NONE in their place:
-- most readers want ids and counts only).
local function batch_load(Q, b, with_payloads)
  local blob = redis.call('HGET', Q.batches, b)
  if not blob then return {}, {}, {}, '', {}, nil end
  local t = cmsgpack.unpack(blob)
  local ids, counts, payloads = t[1], t[2], t[3]
  if payloads == false then  -- kept apart; ids: how many (see above)
    ids = batch_ids(t[5])
    if type(counts) == 'number' then
      local each = {}
      for i = 1, #ids do each[i] = counts end
      counts = each
    end
    payloads = NONE
    if with_payloads then
      payloads = cmsgpack.unpack(redis.call('HGET', Q.batches, 'p' .. b))
    end
  end
  return ids, counts, payloads, t[4] or '', t[5] or {}, t[6]
end

-- `counts` as the record keeps them: one number when all are equal (a fresh pop's are all 1).
local function batch_counts(counts)
  local c = counts[1]
  for i = 2, #counts do
    if counts[i] ~= c then return counts end
  end
  return c
end

-- When batch b was delivered (ms), given batch_load's `since`: a batch of an older version
-- keeps it in the since hash.
local function batch_since(Q, b, since)
  return since or tonumber(redis.call('HGET', Q.since, b) or '0')
end

-- The runs of consecutive ids in `ids` (in their order; text, or numbers where the caller
-- has them, which need no tonumber), as members of `batched` for batch b, the ZADD arguments
-- that add them, and each as 'first:last' (queue_pop's '#' reply).
local function batch_runs(b, ids)
  local runs, scored, spans, first, last = {}, {}, {}, nil, nil
  for i = 1, #ids + 1 do  -- one step past the end closes the last run (no closure per call)
    local n = ids[i] and ids[i] + 0  -- (a number as it is; text coerced, as tonumber does)
    if first and n == last + 1 then
      last = n
    else
      if first then
        local span = string.format('%d:%d', first, last)
        local m = span .. ':' .. b
        runs[#runs + 1], scored[#scored + 1], scored[#scored + 2] = m, string.format('%d', first), m
        spans[#spans + 1] = span
      end
      first, last = n, n
    end
  end
  return runs, scored, spans
end

-- Writes batch b's messages (and indexes them), replacing its runs `old` (a delete comes
-- first: see batch_store). `since`: nil for a batch whose since is in the since hash. Returns
-- the runs' spans (batch_runs, which takes `ids` as text or numbers: the record keeps only
-- how many, its ids being those of its runs).
local function batch_write(Q, b, old, ids, counts, payloads, consumer, since)
  if #old > 0 then redis.call('ZREM', Q.batched, unpack(old)) end
  local runs, scored, spans = batch_runs(b, ids)
  local added = redis.pcall('ZADD', Q.batched, unpack(scored))
  if type(added) == 'table' and added.err then
    -- a hash: the index of a version before 2026-12-07 (a field per message). Its batches'
    -- whole acks still work (they go by name); their messages acked one by one are refused
    -- and come back when their lease ends, as a lost ack's would.
    if not string.find(added.err, 'WRONGTYPE', 1, true) then error(added) end
    redis.call('DEL', Q.batched)
    redis.call('ZADD', Q.batched, unpack(scored))
  end
  local record = {#ids, batch_counts(counts), false, consumer or '', runs, since}
  redis.call('HSET', Q.batches, b, cmsgpack.pack(record), 'p' .. b, cmsgpack.pack(payloads))
  return spans
end

-- Fills in `where` for the ids of `ids` that a batch of one holds: named after that delivery,
-- 'b:<id>:<token>' with the token in `tokens` (the same index; with another token, no batch of
-- one holds it so), or 'b:<id>' (leased before 2026-12-07 evening), both looked at in one call.
local function batch_alone(Q, ids, tokens, where)
  local at, names = {}, {}
  for i, id in ipairs(ids) do
    if not where[i] and string.match(id, '^%d+$') then
      local n = #names
      local named = 'b:' .. id .. ':' .. (tokens[i] or '')  -- (no token: matches no batch)
      at[#at + 1], names[n + 1], names[n + 2] = i, named, 'b:' .. id
    end
  end
  if #names == 0 then return where end
  local leased = redis.call('ZMSCORE', Q.inflight, unpack(names))
  for j, i in ipairs(at) do
    if leased[2 * j - 1] then
      where[i] = names[2 * j - 1]
    elseif leased[2 * j] then
      where[i] = names[2 * j]
    end
  end
  return where
end

-- For each of `ids`, the batch that holds it, or false (not held by a batch); `tokens` (the
-- same index: the delivery each is named with) find the batches of one. Each look (the run
-- that starts at or before an id) also tells what lies between that run's end and the id: no
-- batch. Taken from the highest id down, one look serves a run's ids and the loose ids above
-- it. Callers check that the batch holds the id (with its token) before they act on it.
local function batch_where(Q, ids, tokens)
  local where, order, known = {}, {}, {}  -- known: {low, high, batch or false}
  for i, id in ipairs(ids) do
    where[i] = false
    if string.match(id, '^%d+$') then order[#order + 1] = i end
  end
  table.sort(order, function(x, y) return tonumber(ids[x]) > tonumber(ids[y]) end)
  for _, i in ipairs(order) do
    local n, found, hit = tonumber(ids[i]), false, false
    for _, k in ipairs(known) do
      if n >= k[1] and n <= k[2] then found, hit = k[3], true break end
    end
    if not hit then
      local m = redis.pcall('ZRANGE', Q.batched, ids[i], '-inf', 'BYSCORE', 'REV', 'LIMIT', 0, 1)[1]
      local low = -math.huge
      if m then
        local first, last, b = string.match(m, '^(%d+):(%d+):(.+)$')
        first, last = tonumber(first), tonumber(last)
        known[#known + 1] = {first, last, b}
        if n <= last then found = b else low = last + 1 end
      end
      if not found then known[#known + 1] = {low, n, false} end
    end
    where[i] = found
  end
  return batch_alone(Q, ids, tokens, where)
end

local function batch_count(Q, delta)
  if delta ~= 0 and redis.call('HINCRBY', Q.batches, 'extra', delta) == 0 then
    redis.call('HDEL', Q.batches, 'extra')
  end
end

-- Stores what batch b (which held `was` messages, indexed by the runs `old`) still holds, or
-- closes it (its lease and since go too) when nothing. Its first write is a delete: at maxmemory
-- a script without the allow-oom flag (EVALSHA) may not make a command that can grow memory
-- (HSET, HINCRBY, ZADD) its first write, and acks must go on there (they free memory).
-- `consumer`, `since`: the batch's (batch_load's fourth and sixth values).
local function batch_store(Q, b, was, old, ids, counts, payloads, consumer, since)
  if #ids > 0 then
    batch_write(Q, b, old, ids, counts, payloads, consumer, since)
  else
    if #old > 0 then  -- a batch with runs (batch_write's) keeps its payloads apart
      redis.call('ZREM', Q.batched, unpack(old))
      redis.call('HDEL', Q.batches, b, 'p' .. b)
    else
      redis.call('HDEL', Q.batches, b)
    end
    redis.call('ZREM', Q.inflight, b)
    if not since then redis.call('HDEL', Q.since, b) end
  end
  batch_count(Q, math.max(#ids - 1, 0) - (was - 1))
end

-- Leases the messages one pop delivers as a new batch, until `deadline`, held by `consumer`
-- (nil or '': unnamed); returns the batch's name and its ids as spans ('first:last', or the
-- id alone for a batch of one: queue_pop's '#' reply). One message: 'b:<id>:<token>', with no
-- run (a name taken falls back to the other naming). An open batch is a member of the in-flight
-- zset (from here until batch_store closes it), so its lease's ZADD NX is also the look for a
-- name taken: no call of its own. `ids`: text, or numbers (see batch_write) but for one message.
local function batch_open(Q, now, deadline, ids, counts, payloads, consumer)
  if #ids == 1 then
    local b = 'b:' .. ids[1] .. ':' .. (counts[1] == 1 and '1' or string.format('%d', counts[1]))
    if redis.call('ZADD', Q.inflight, 'NX', deadline, b) == 1 then
      local record = {ids, counts, payloads, consumer or '', NONE, now}
      redis.call('HSET', Q.batches, b, cmsgpack.pack(record))
      return b, ids
    end
  end
  local stamp = string.format('%d', now)
  local b, k = 'b' .. stamp, 0
  while redis.call('ZADD', Q.inflight, 'NX', deadline, b) == 0 do  -- two pops in one ms
    k = k + 1                                                      -- (or a clock set back)
    b = 'b' .. stamp .. '-' .. k
  end
  local spans = batch_write(Q, b, {}, ids, counts, payloads, consumer, now)
  batch_count(Q, #ids - 1)
  return b, spans
end

-- What a batch keeps of its messages (ids, counts, payloads, in order) but those whose index
-- `gone` marks: {ids, counts, payloads}.
local function batch_kept(ids, counts, payloads, gone)
  local kept = {{}, {}, {}}
  for i = 1, #ids do
    if not gone[i] then
      local n = #kept[1] + 1
      kept[1][n], kept[2][n], kept[3][n] = ids[i], counts[i], payloads[i]
    end
  end
  return kept
end

-- Takes out of batch b the messages in `wanted` (a set of ids; nil: any), at most `limit`
-- (nil: no limit), in id order; returns {ids, counts, payloads} of those taken.
local function batch_take(Q, b, wanted, limit)
  local ids, counts, payloads, consumer, runs, since = batch_load(Q, b, true)
  local order = {}
  for i, id in ipairs(ids) do
    if wanted == nil or wanted[id] then order[#order + 1] = i end
  end
  table.sort(order, function(x, y) return ids[x] < ids[y] end)
  local taken, gone = {ids = {}, counts = {}, payloads = {}}, {}
  for j = 1, math.min(#order, limit or #order) do
    local i = order[j]
    gone[i] = true
    taken.ids[j], taken.counts[j], taken.payloads[j] = ids[i], counts[i], payloads[i]
  end
  local kept = batch_kept(ids, counts, payloads, gone)
  batch_store(Q, b, #ids, runs, kept[1], kept[2], kept[3], consumer, since)
  return taken
end

-- Writes the payload and delivery count fields of messages taken out of a batch.
local function batch_fields(Q, taken)
  local payloads, counts = {}, {}
  for i, id in ipairs(taken.ids) do
    payloads[2 * i - 1], payloads[2 * i] = id, taken.payloads[i]
    counts[2 * i - 1], counts[2 * i] = id, taken.counts[i]
  end
  if #payloads > 0 then
    redis.call('HSET', Q.payloads, unpack(payloads))
    redis.call('HSET', Q.deliveries, unpack(counts))
  end
end

-- Gives those of `ids` that a batch holds with the delivery count in `tokens` (the same index)
-- the per-message layout, keeping their lease. Others stay as they are: a stale token changes
-- nothing.
local function batch_detach(Q, ids, tokens)
  if #ids == 0 then return end
  local where = batch_where(Q, ids, tokens)
  local by, order = {}, {}
  for i, b in ipairs(where) do
    if b then
      if not by[b] then by[b], order[#order + 1] = {}, b end
      table.insert(by[b], i)
    end
  end
  for _, b in ipairs(order) do
    local held, counts, _, _, _, since = batch_load(Q, b)
    local current, wanted = {}, {}
    for i, id in ipairs(held) do current[id] = tostring(counts[i]) end
    for _, i in ipairs(by[b]) do
      if current[ids[i]] == tokens[i] then wanted[ids[i]] = true end
    end
    if next(wanted) then
      local deadline = redis.call('ZSCORE', Q.inflight, b)
      since = string.format('%d', batch_since(Q, b, since))  -- before the take, which may close b
      local taken = batch_take(Q, b, wanted, nil)
      batch_fields(Q, taken)
      for _, id in ipairs(taken.ids) do
        redis.call('ZADD', Q.inflight, deadline, id)
        redis.call('HSET', Q.since, id, since)
      end
    end
  end
end

-- The in-flight batches held by a consumer in `holders` (a set of names), oldest lease first.
local function batches_of(Q, holders)
  local members = {}
  for _, m in ipairs(redis.call('ZRANGE', Q.inflight, 0, -1)) do
    if batch_is(m) and holders[select(4, batch_load(Q, m))] then
      members[#members + 1] = m
    end
  end
  return members
end

-- Takes up to `limit` messages out of flight, oldest lease first (a batch's in id order): those
-- whose lease ended by `now` or, with `elapsed` >= 0, those delivered at least `elapsed` ms
-- before, or, with `holders` (a set of consumer names), those of the batches they hold. They keep
-- their payload and delivery count fields, for the caller to move them to the delayed or dead
-- set. Returns their ids and delivery counts.
local function leases_take(Q, now, limit, elapsed, holders)
  local members = {}
  if holders then
    members = batches_of(Q, holders)
  elseif elapsed < 0 then
    members = redis.call('ZRANGEBYSCORE', Q.inflight, '-inf', now, 'LIMIT', 0, limit)
  else
    for _, m in ipairs(redis.call('ZRANGE', Q.inflight, 0, -1)) do
      if #members >= limit then break end  -- each member holds one message at least
      local at = batch_is(m) and select(6, batch_load(Q, m))  -- since, or nil
      if (at or tonumber(redis.call('HGET', Q.since, m) or 0)) <= now - elapsed then
        members[#members + 1] = m
      end
    end
  end
  local ids, counts = {}, {}
  for _, m in ipairs(members) do
    if #ids >= limit then break end
    if batch_is(m) then
      local taken = batch_take(Q, m, nil, limit - #ids)
      batch_fields(Q, taken)
      for i, id in ipairs(taken.ids) do ids[#ids + 1], counts[#counts + 1] = id, taken.counts[i] end
    else
      ids[#ids + 1] = m
      counts[#counts + 1] = tonumber(redis.call('HGET', Q.deliveries, m) or 0)
      redis.call('ZREM', Q.inflight, m)
      redis.call('HDEL', Q.since, m)
    end
  end
  return ids, counts
end
