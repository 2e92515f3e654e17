-- Forward a batch, each message onto the output that is shortest at that moment.
-- KEYS[1] this instance's pending list, KEYS[2] the input list, KEYS[3..] the output lists
-- ARGV[1] batch size N, ARGV[2] "1" to return the payloads moved, "0" to return their count,
-- ARGV[3..] the maxLength of each output, in KEYS order (0: no limit)
-- Ties go to the output listed first. When every output is at its limit, nothing more is taken.
-- Returns {full, count} or {full, payload, ...}; full is 1 when it stopped because all were full.
local n = tonumber(ARGV[1])
local lens, limits = {}, {}
for i = 3, #KEYS do
  lens[i] = redis.call('LLEN', KEYS[i])
  limits[i] = tonumber(ARGV[i])
end
local function pick()
  local best = nil
  for i = 3, #KEYS do
    if (limits[i] == 0 or lens[i] < limits[i]) and (best == nil or lens[i] < lens[best]) then
      best = i
    end
  end
  return best
end
local moved, full = {}, 0
for _, source in ipairs({KEYS[1], KEYS[2]}) do
  while #moved < n and full == 0 do
    local out = pick()
    if not out then
      full = 1
    else
      local item = redis.call('RPOP', source)
      if not item then break end
      redis.call('LPUSH', KEYS[out], item)
      lens[out] = lens[out] + 1
      moved[#moved + 1] = item
    end
  end
end
if ARGV[2] == '1' then
  table.insert(moved, 1, full)
  return moved
end
return {full, #moved}
