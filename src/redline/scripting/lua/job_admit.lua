-- Admit a popped batch of jobs under their tasks' limits, or put each refused one back to wait
-- (not an attempt); first give back the slots of jobs that finished since the last call. One
-- call per batch and queue: each limit's set is trimmed and counted once, and written once.
-- Admitted: a job takes a concurrency slot (a member of the slots set scored by its lease
-- deadline, so a killed worker's slot is reclaimed once that passes; named by the worker's
-- prefix and the job's id: the worker holds it after the job, see jobs/held_slots.py) and a
-- rate-limit start
-- (counted in the log's one member for this call: see _rate_log.lua); it stays in the batch it
-- was leased with. Refused: it leaves flight for the delayed set, its delivery count taken
-- back, due when a start frees up (rate) or when the earliest slot's lease ends (concurrency;
-- a release wakes it sooner).
-- KEYS[1] the queue's registry of limits in use (zset: member -> ms last registered)
-- then per source (a key jobs were delivered from), 7 keys: inflight zset, delayed zset,
--   deliveries hash, since hash, payloads hash, batches hash, batched zset (see _batch.lua)
-- then, when ARGV[4] is 1, the queue's delayed zsets of priorities 0-9 and their deliveries
--   hashes (20 keys: a release wakes waiting jobs there)
-- then per limit, 2 keys: concurrency slots zset (id -> lease deadline, ms) and waiters list
--   ("<priority>:<id>:<delivery count>"); or rate log zset (_rate_log.lua) and spreading key
--   (ms when the next refused job is due)
-- ARGV[1] lease (ms)   ARGV[2] ms a registry member is kept after it was last registered,
--   then '/' and the prefix of this call's slot names ('@<worker>.<call>:'), a slot being
--   named prefix .. job id (without '/', as an earlier worker sends it: a slot is the job's id),
--   then '/' and, per limit ('l=n' joined by ','), the starts the worker asks to take ahead
--   under rate limit l (it spends them within a second with no call: jobs/held_slots.py)
-- ARGV[3] sources   ARGV[4] 1 when there are releases (and the 20 level keys), else 0
-- ARGV[5] limits    ARGV[6] R: registry members to (re)register, ARGV[7..6+R] the members
--   (workers send one when they first meet a limit, then once a minute)
-- then N: limits with slots to give back, and N pairs: limit index (1-based), the ids of its
--   finished jobs joined by ',' (message ids are digits)
-- then P: specs (each distinct set of limits in the batch), and per spec 5 fields: cap (0: none),
--   cap's limit index, starts per period (0: none), period (ms), rate's limit index
-- then per source its priority, the batch its jobs were popped in ('' when unknown or
--   several) and that batch's 'n:id:token' (Batch.whole; '' with no batch): 3 fields each. A
--   batch still holding all it was delivered with holds every job of it asked about with its
--   token (batch_intact): no job of it is looked for, and a group under limits with room for
--   all its jobs is decided at once.
-- then the jobs, in groups of consecutive jobs of one source and spec: source index, spec
--   index, n (jobs in the group), m, then m pairs (index in the group, delivery count) of the
--   jobs whose count (token) is not 1, then the group's ids joined by ',' (one argument: each
--   ARGV costs the client its packing and the server its parsing, more than a split here)
-- Returns {verdicts, due..., (limit, starts)...}: verdicts a string of one character per job,
-- in order: '1' admitted, '-' not held (stale), 'c' / 'r' put back to wait for a slot / for
-- the rate; then, for each put back in that order, the ms until it is due; then, per rate
-- limit that granted starts taken ahead, its index and how many (at most an eighth of its
-- limit, and what its window has room for: they are logged as starts now).
-- include _batch.lua
-- include _job_slots.lua
-- include _rate_log.lua
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local lease, S, R = tonumber(ARGV[1]), tonumber(ARGV[3]), tonumber(ARGV[6])
local kept_ms, prefix, ahead = string.match(ARGV[2], '^(%d+)/?([^/]*)/?(.*)$')
local a = 7 + R

if R > 0 then
  local scored = {}
  for i = 7, 6 + R do scored[#scored + 1], scored[#scored + 2] = now, ARGV[i] end
  redis.call('ZADD', KEYS[1], unpack(scored))
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(kept_ms))
end

local sources = {}
for s = 1, S do
  local k = 2 + 7 * (s - 1)
  sources[s] = {
    inflight = KEYS[k], delayed = KEYS[k + 1], deliveries = KEYS[k + 2], since = KEYS[k + 3],
    payloads = KEYS[k + 4], batches = KEYS[k + 5], batched = KEYS[k + 6],
  }
end
local base = 2 + 7 * S
local W = nil
if ARGV[4] == '1' then
  W = slots_levels(KEYS, base)
  base = base + 20
end
local function limit(l) return KEYS[base + 2 * (l - 1)], KEYS[base + 2 * l - 1] end

-- The ids joined in `text` (',' between them), as a list.
local function split(text)
  local list = {}
  for id in string.gmatch(text, '[^,]+') do list[#list + 1] = id end
  return list
end

-- The finished jobs' slots, by limit.
local n = tonumber(ARGV[a])
for i = a + 1, a + 2 * n, 2 do
  local slots, waiters = limit(tonumber(ARGV[i]))
  slots_release(W, slots, waiters, split(ARGV[i + 1]), now)
end
a = a + 1 + 2 * n

local specs = {}
for p = 1, tonumber(ARGV[a]) do
  local i = a + 5 * p - 4
  specs[p] = {
    cap = tonumber(ARGV[i]), slots = tonumber(ARGV[i + 1]), rate = tonumber(ARGV[i + 2]),
    period = tonumber(ARGV[i + 3]), log = tonumber(ARGV[i + 4]),
  }
end
a = a + 1 + 5 * #specs
for s = 1, S do
  local Q = sources[s]
  Q.priority, Q.batch, Q.whole = ARGV[a + 3 * s - 3], ARGV[a + 3 * s - 2], ARGV[a + 3 * s - 1]
end
a = a + 3 * S

-- Which jobs are still held with their token: in a batch (one read of each batch), or on
-- their own (see _batch.lua). A batch's record lists exactly the messages it holds, so a job
-- the batch it was popped in still lists with its token is held, without asking `batched`.
local as_text = {}
local function token_of(count)  -- a delivery count as the ARGV tokens are written (no tonumber
  local token = string.format('%d', count)  -- per job: one string per distinct count)
  as_text[count] = token
  return token
end

local function tokens_of(Q, b)  -- id -> its token, of what batch b holds
  local listed, counts = batch_load(Q, b)
  local of = {}
  for j, id in ipairs(listed) do of[id] = as_text[counts[j]] or token_of(counts[j]) end
  return of
end

local ids, tokens, held = {}, {}, {}
local function mark_loose(Q, loose)  -- jobs not in the batch their source names, or none named
  local names, named, read = {}, {}, {}
  for k, i in ipairs(loose) do names[k], named[k] = ids[i], tokens[i] end
  local where = batch_where(Q, names, named)
  for k, i in ipairs(loose) do
    local b = where[k]
    if b then
      read[b] = read[b] or tokens_of(Q, b)
      held[i] = read[b][ids[i]] == tokens[i]
    else
      held[i] = redis.call('HGET', Q.deliveries, ids[i]) == tokens[i]
        and redis.call('ZSCORE', Q.inflight, ids[i]) ~= false
    end
  end
end

-- Each source's batch: intact (as its pop left it, see batch_intact, its messages all on their
-- first delivery: a job asked about with token 1 is held, no job is looked for), or as its
-- record lists it, walked in its order below (a pop's jobs come in it: no table of the batch is
-- made).
local walks = {}
for s = 1, S do
  local Q, walk = sources[s], {listed = {}, counts = {}, at = 1, loose = {}}
  local intact, again = nil, true
  if Q.whole ~= '' then
    local held_n, _, _, any_again = batch_intact(Q, Q.batch, Q.whole)
    intact, again = held_n, any_again
  end
  if intact and not again then  -- as popped, every message on its first delivery
    walk.intact = true
  elseif Q.batch ~= '' then
    walk.listed, walk.counts = batch_load(Q, Q.batch)
  end
  walks[s] = walk
end

-- The jobs as parallel arrays (no table per job), read and looked for in their batch in one
-- pass; `groups` (first, last, source, spec, and for a group of an intact batch its ids and
-- odd tokens, read only if needed: `unfold`) say whose limits they are under.
local argv, groups, J = ARGV, {}, 0
while a <= #argv do
  local s, spec, n = tonumber(argv[a]), specs[tonumber(argv[a + 1])], tonumber(argv[a + 2])
  local later, first = tonumber(argv[a + 3]), J + 1
  local odd = {}  -- index in the group -> token, of those not on their first delivery
  for k = a + 4, a + 2 + 2 * later, 2 do odd[tonumber(argv[k])] = argv[k + 1] end
  a = a + 4 + 2 * later
  local walk = walks[s]
  if walk.intact then
    J = J + n
    groups[#groups + 1] = {first, J, s, spec, argv[a], odd, later}
  else
    local listed, counts, at, k = walk.listed, walk.counts, walk.at, 0
    for id in string.gmatch(argv[a], '[^,]+') do
      local token, m = odd[k + 1] or '1', at
      k, J = k + 1, J + 1
      ids[J], tokens[J] = id, token
      while listed[m] and listed[m] ~= id do m = m + 1 end
      held[J] = listed[m] ~= nil and (as_text[counts[m]] or token_of(counts[m])) == token
      if held[J] then at = m + 1 else walk.loose[#walk.loose + 1] = J end
    end
    groups[#groups + 1] = {first, J, s, spec}
    walk.at = at
  end
  a = a + 1
end
for s = 1, S do
  if #walks[s].loose > 0 then mark_loose(sources[s], walks[s].loose) end
end

-- Each limit's set, trimmed and counted once; its new members written once (`flush`): a cap's
-- slots (`add`), a rate's starts (`fresh`, one member for them all).
local state = {}
local deadline = string.format('%d', now + lease)  -- a slot's score, made a string once
local function open_cap(l)
  local st = state[l]
  if not st then
    local key = limit(l)
    redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
    st = {count = redis.call('ZCARD', key), add = {}}
    state[l] = st
  end
  return st
end
local function open_rate(l, period, rate)
  local st = state[l]
  if not st then
    local count, total, first = rate_open((limit(l)), now - period)
    st = {count = count, total = total, first = first, fresh = 0, period = period, rate = rate}
    state[l] = st
  end
  return st
end
local function flush(l)
  local st = state[l]
  if st.add and #st.add > 0 then
    slots_add((limit(l)), st.add)
    st.add = {}
  elseif st.fresh and st.fresh > 0 then
    st.total = rate_write((limit(l)), now, st.total, st.fresh, st.period)
    st.first, st.fresh = st.first or now, 0
  end
end

local function refuse_cap(i, spec, s)
  flush(spec.slots)
  local slots, waiters = limit(spec.slots)
  local entry = sources[s].priority .. ':' .. ids[i] .. ':' .. (tonumber(tokens[i]) - 1)
  redis.call('RPUSH', waiters, entry)
  redis.call('PEXPIRE', waiters, 2 * lease)
  return tonumber(redis.call('ZRANGE', slots, 0, 0, 'WITHSCORES')[2]), 'c'
end

local function refuse_rate(spec)
  flush(spec.log)
  local _, spreading = limit(spec.log)
  local due = math.max(state[spec.log].first + spec.period, tonumber(redis.call('GET', spreading) or 0))
  local step = math.max(1, math.floor(spec.period / spec.rate))
  redis.call('SET', spreading, due + step, 'PX', due + step - now + spec.period)
  return due, 'r'
end

-- The verdict on held job i of source s under `spec`: nil (admitted) or the time it is due
-- and why it waits.
local function decide(i, spec, s)
  local cap, holds = nil, false
  if spec.cap > 0 then
    cap = open_cap(spec.slots)
    -- Only a redelivery can hold a slot already (a refused job's count is taken back), and
    -- only one named by its id (an earlier worker's): a named slot is a new member each time.
    holds = prefix == '' and tokens[i] ~= '1'
      and redis.call('ZSCORE', (limit(spec.slots)), ids[i])
    if not holds and cap.count >= spec.cap then return refuse_cap(i, spec, s) end
  end
  if spec.rate > 0 then
    local log = open_rate(spec.log, spec.period, spec.rate)
    if log.count >= spec.rate then return refuse_rate(spec) end
    log.count, log.fresh = log.count + 1, log.fresh + 1
  end
  if cap then
    if not holds then cap.count = cap.count + 1 end
    cap.add[#cap.add + 1], cap.add[#cap.add + 2] = deadline, prefix .. ids[i]
  end
  return nil
end

-- The ids and tokens of group g of an intact batch, for deciding its jobs one by one: held
-- are those asked about with its messages' one delivery count, 1.
local function unfold(g)
  local i, odd = g[1], g[6]
  for id in string.gmatch(g[5], '[^,]+') do
    ids[i], tokens[i] = id, odd[i - g[1] + 1] or '1'
    held[i] = tokens[i] == '1'
    i = i + 1
  end
end

-- Whether group g of an intact batch, all on their first delivery, fits under `spec` whole:
-- then its jobs are admitted at once (a cap's slots taken by their ids, a rate's starts
-- counted), each as `decide` would have admitted it.
local function admit_all(g, spec)
  local n = g[2] - g[1] + 1
  if g[7] > 0 then return false end  -- some asked with another token (stale): one by one
  local cap = spec.cap > 0 and open_cap(spec.slots)
  local log = spec.rate > 0 and open_rate(spec.log, spec.period, spec.rate)
  if (cap and cap.count + n > spec.cap) or (log and log.count + n > spec.rate) then
    return false
  end
  if log then log.count, log.fresh = log.count + n, log.fresh + n end
  if cap then
    local add = cap.add
    cap.count = cap.count + n
    for id in string.gmatch(g[5], '[^,]+') do
      add[#add + 1], add[#add + 2] = deadline, prefix .. id
    end
  end
  return true
end

local verdicts, reply, refused = {}, {''}, {}  -- verdicts: in job order; refused: job, source, ...
for _, g in ipairs(groups) do
  local s, spec = g[3], g[4]
  if g[5] and admit_all(g, spec) then
    verdicts[#verdicts + 1] = string.rep('1', g[2] - g[1] + 1)
  else
    if g[5] then unfold(g) end
    for i = g[1], g[2] do
      if not held[i] then
        verdicts[#verdicts + 1] = '-'
      else
        local due, why = decide(i, spec, s)
        verdicts[#verdicts + 1] = why or '1'
        if due then
          reply[#reply + 1], refused[#refused + 1], refused[#refused + 2] = due - now, i, s
        end
      end
    end
  end
end
-- Starts taken ahead, logged now: at most an eighth of the limit, while its window has room.
local grants = {}
for l, n in string.gmatch(ahead, '(%d+)=(%d+)') do
  local st = state[tonumber(l)]
  if st and st.rate then
    local extra = math.min(tonumber(n), math.floor(st.rate / 8), st.rate - st.count)
    if extra > 0 then
      st.count, st.fresh = st.count + extra, st.fresh + extra
      grants[#grants + 1], grants[#grants + 2] = tonumber(l), extra
    end
  end
end
for l in pairs(state) do flush(l) end
reply[1] = table.concat(verdicts)

-- The refused leave their batches, then flight.
local detach = {}
for k = 1, #refused, 2 do
  local i, s = refused[k], refused[k + 1]
  detach[s] = detach[s] or {{}, {}}
  table.insert(detach[s][1], ids[i])
  table.insert(detach[s][2], tokens[i])
end
for s = 1, S do
  if detach[s] then batch_detach(sources[s], detach[s][1], detach[s][2]) end
end
for k = 1, #refused, 2 do
  local i, Q = refused[k], sources[refused[k + 1]]
  redis.call('ZREM', Q.inflight, ids[i])
  redis.call('HINCRBY', Q.deliveries, ids[i], -1)
  redis.call('HDEL', Q.since, ids[i])
  redis.call('ZADD', Q.delayed, now + reply[(k + 1) / 2 + 1], ids[i])
end
for _, x in ipairs(grants) do reply[#reply + 1] = x end
return reply
