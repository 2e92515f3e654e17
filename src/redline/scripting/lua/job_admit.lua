-- Admit a popped batch of jobs under their tasks' limits, or put each refused one back to wait
-- (not an attempt); first give back the slots of jobs that finished since the last call. One
-- call per batch and queue: each limit's set is trimmed and counted once, and written once.
-- Admitted: a job takes a concurrency slot (a member of the slots set scored by its lease
-- deadline, so a killed worker's slot is reclaimed once that passes) and a rate-limit start (a
-- member of the log, scored by the time it started); it stays in the batch it was leased with.
-- Refused: it leaves flight for the delayed set, its delivery count taken back, due when a start
-- frees up (rate) or when the earliest slot's lease ends (concurrency; a release wakes it
-- sooner).
-- KEYS[1] the queue's registry of limits in use (zset: member -> ms last registered)
-- then per source (a key jobs were delivered from), 7 keys: inflight zset, delayed zset,
--   deliveries hash, since hash, payloads hash, batches hash, batched zset (see _batch.lua)
-- then, when ARGV[4] is 1, the queue's delayed zsets of priorities 0-9 and their deliveries
--   hashes (20 keys: a release wakes waiting jobs there)
-- then per limit, 2 keys: concurrency slots zset (id -> lease deadline, ms) and waiters list
--   ("<priority>:<id>:<delivery count>"); or rate log zset ("<id>:<count>" -> start, ms) and
--   spreading key (ms when the next refused job is due)
-- ARGV[1] lease (ms)   ARGV[2] ms a registry member is kept after it was last registered
-- ARGV[3] sources   ARGV[4] 1 when there are releases (and the 20 level keys), else 0
-- ARGV[5] limits    ARGV[6] R: registry members to (re)register, ARGV[7..6+R] the members
--   (workers send one when they first meet a limit, then once a minute)
-- then N: slots to give back, and N pairs: limit index (1-based), id of the finished job
-- then P: specs (each distinct set of limits in the batch), and per spec 5 fields: cap (0: none),
--   cap's limit index, starts per period (0: none), period (ms), rate's limit index
-- then per source its priority and the batch its jobs were popped in ('' when unknown or
--   several): 2 fields each
-- then per job 4 fields: id, delivery count (token), source index, spec index
-- Returns per job, in order: {1} admitted, {0, ms until due, "concurrency"|"rate"} put back,
-- {-1} not held (stale).
-- include _batch.lua
-- include _job_slots.lua
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local lease, S, R = tonumber(ARGV[1]), tonumber(ARGV[3]), tonumber(ARGV[6])
local a = 7 + R

if R > 0 then
  local scored = {}
  for i = 7, 6 + R do scored[#scored + 1], scored[#scored + 2] = now, ARGV[i] end
  redis.call('ZADD', KEYS[1], unpack(scored))
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[2]))
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
  W = slots_levels(base)
  base = base + 20
end
local function limit(l) return KEYS[base + 2 * (l - 1)], KEYS[base + 2 * l - 1] end

-- The finished jobs' slots, by limit.
local n = tonumber(ARGV[a])
local by, order = {}, {}
for i = a + 1, a + 2 * n, 2 do
  local l = tonumber(ARGV[i])
  if not by[l] then by[l], order[#order + 1] = {}, l end
  table.insert(by[l], ARGV[i + 1])
end
for _, l in ipairs(order) do
  local slots, waiters = limit(l)
  slots_release(W, slots, waiters, by[l], now)
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
  sources[s].priority, sources[s].batch = ARGV[a + 2 * s - 2], ARGV[a + 2 * s - 1]
end
a = a + 2 * S

local jobs = {}
for i = a, #ARGV, 4 do
  jobs[#jobs + 1] = {
    id = ARGV[i], token = ARGV[i + 1], source = tonumber(ARGV[i + 2]),
    spec = specs[tonumber(ARGV[i + 3])],
  }
end

-- Which jobs are still held with their token: in a batch (one read of each batch), or on their
-- own (see _batch.lua). A batch's record lists exactly the messages it holds, so a job the
-- batch it was popped in still lists with its token is held, without asking `batched`.
local function held_alone(Q, job)
  return redis.call('HGET', Q.deliveries, job.id) == job.token
    and redis.call('ZSCORE', Q.inflight, job.id) ~= false
end

local function tokens_of(Q, b)
  local held, tokens = batch_load(Q, b)
  local of = {}
  for j, id in ipairs(held) do of[id] = tostring(tokens[j]) end
  return of
end

local function mark_held_in(Q, list)
  local popped, counts, ids = {}, {}, {}
  if Q.batch ~= '' then
    popped = tokens_of(Q, Q.batch)
    counts[Q.batch] = popped
  end
  for _, job in ipairs(list) do
    job.held = popped[job.id] == job.token
    if not job.held then ids[#ids + 1] = job end
  end
  if #ids == 0 then return end
  local names = {}
  for i, job in ipairs(ids) do names[i] = job.id end
  local where = batch_where(Q, names)
  for i, job in ipairs(ids) do
    local b = where[i]
    if b then
      counts[b] = counts[b] or tokens_of(Q, b)
      job.held = counts[b][job.id] == job.token
    else
      job.held = held_alone(Q, job)
    end
  end
end

local function mark_held()
  local of = {}
  for _, job in ipairs(jobs) do
    of[job.source] = of[job.source] or {}
    table.insert(of[job.source], job)
  end
  for s = 1, S do
    if of[s] then mark_held_in(sources[s], of[s]) end
  end
end

-- Each limit's set, trimmed and counted once; its new members written once (`flush`).
-- A rate log (`ttl`: its period) expires when no job started for a period.
local state = {}
local function open(l, trim_to, ttl)
  if not state[l] then
    local key = limit(l)
    redis.call('ZREMRANGEBYSCORE', key, '-inf', trim_to)
    state[l] = {count = redis.call('ZCARD', key), add = {}, ttl = ttl}
  end
  return state[l]
end
local function flush(l)
  local st = state[l]
  if #st.add == 0 then return end
  local key = limit(l)
  redis.call('ZADD', key, unpack(st.add))
  if st.ttl then redis.call('PEXPIRE', key, st.ttl) end
  st.add = {}
end
local function earliest(l)
  local first = redis.call('ZRANGE', (limit(l)), 0, 0, 'WITHSCORES')
  return tonumber(first[2])
end

local function refuse_cap(job, spec)
  flush(spec.slots)
  local _, waiters = limit(spec.slots)
  local priority = sources[job.source].priority
  redis.call('RPUSH', waiters, priority .. ':' .. job.id .. ':' .. (tonumber(job.token) - 1))
  redis.call('PEXPIRE', waiters, 2 * lease)
  return earliest(spec.slots), 'concurrency'
end

local function refuse_rate(spec)
  flush(spec.log)
  local _, spreading = limit(spec.log)
  local due = math.max(earliest(spec.log) + spec.period, tonumber(redis.call('GET', spreading) or 0))
  local step = math.max(1, math.floor(spec.period / spec.rate))
  redis.call('SET', spreading, due + step, 'PX', due + step - now + spec.period)
  return due, 'rate'
end

-- The verdict on one held job: nil (admitted) or the time it is due and why it waits.
local function decide(job)
  local spec, cap, holds = job.spec, nil, false
  if spec.cap > 0 then
    cap = open(spec.slots, now)
    -- Only a redelivery can hold a slot already (a refused job's count is taken back).
    holds = tonumber(job.token) > 1 and redis.call('ZSCORE', (limit(spec.slots)), job.id)
    if not holds and cap.count >= spec.cap then return refuse_cap(job, spec) end
  end
  if spec.rate > 0 then
    local log = open(spec.log, now - spec.period, spec.period)
    if log.count >= spec.rate then return refuse_rate(spec) end
    log.count = log.count + 1
    log.add[#log.add + 1], log.add[#log.add + 2] = now, job.id .. ':' .. job.token
  end
  if cap then
    if not holds then cap.count = cap.count + 1 end
    cap.add[#cap.add + 1], cap.add[#cap.add + 2] = now + lease, job.id
  end
  return nil
end

mark_held()
local out, refused = {}, {}
for i, job in ipairs(jobs) do
  if not job.held then
    out[i] = {-1}
  else
    local due, why = decide(job)
    if due then
      out[i] = {0, due - now, why}
      refused[#refused + 1] = {job, due}
    else
      out[i] = {1}
    end
  end
end
for l in pairs(state) do flush(l) end

-- The refused leave their batches, then flight.
local detach = {}
for _, r in ipairs(refused) do
  local job = r[1]
  detach[job.source] = detach[job.source] or {{}, {}}
  table.insert(detach[job.source][1], job.id)
  table.insert(detach[job.source][2], job.token)
end
for s = 1, S do
  if detach[s] then batch_detach(sources[s], detach[s][1], detach[s][2]) end
end
for _, r in ipairs(refused) do
  local job, due = r[1], r[2]
  local Q = sources[job.source]
  redis.call('ZREM', Q.inflight, job.id)
  redis.call('HINCRBY', Q.deliveries, job.id, -1)
  redis.call('HDEL', Q.since, job.id)
  redis.call('ZADD', Q.delayed, due, job.id)
end
return out
