-- _rate_log.lua: included (`-- include _rate_log.lua`) by job_admit. A rate limit's log is a
-- zset with one member per admission call that admitted starts under it, scored by when (ms,
-- the server's clock): "#<total>:<n>", n the starts it admitted and total the log's running
-- count of starts up to and with them (15 digits, so that members of one ms sort in order).
-- The starts after a time are then the last member's total less the first's, plus the first's
-- n: a trim and two reads, whatever the rate. A member of an earlier version (one per start,
-- "<id>:<count>") counts one; a log holding one is counted member by member.

-- total and n of a member, or nil when it is not one of this form.
local function rate_member(m)
  local total, n = string.match(m, '^#(%d+):(%d+)$')
  if total then return tonumber(total), tonumber(n) end
  return nil
end

-- The starts `log` holds, and the largest total, counted member by member.
local function rate_count_all(log)
  local count, total = 0, 0
  for _, m in ipairs(redis.call('ZRANGE', log, 0, -1)) do
    local t, n = rate_member(m)
    count, total = count + (n or 1), math.max(total, t or 0)
  end
  return count, total
end

-- Trims `log` to the starts after `trim_to` (ms); returns how many are left, the running
-- total of the last member (0: none) and when the earliest left started (nil: none).
local function rate_open(log, trim_to)
  redis.call('ZREMRANGEBYSCORE', log, '-inf', trim_to)
  local first = redis.call('ZRANGE', log, 0, 0, 'WITHSCORES')
  if not first[1] then return 0, 0, nil end
  local t1, n1 = rate_member(first[1])
  local t2 = rate_member(redis.call('ZRANGE', log, -1, -1)[1])
  if t1 and t2 and t2 >= t1 then return t2 - t1 + n1, t2, tonumber(first[2]) end
  local count, total = rate_count_all(log)  -- an earlier version's members, or a clock set back
  return count, total, tonumber(first[2])
end

-- Logs `n` starts at `now` after the running total `total`; the log expires a `period` (ms)
-- after its last start. Returns the new total.
local function rate_write(log, now, total, n, period)
  total = total + n
  redis.call('ZADD', log, now, string.format('#%015d:%d', total, n))
  redis.call('PEXPIRE', log, period)
  return total
end
