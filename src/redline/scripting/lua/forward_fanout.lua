-- Forward a batch onto every output: first what this instance has pending, then more from `in`.
-- KEYS[1] this instance's pending list, KEYS[2] the input list, KEYS[3..] the output lists
-- ARGV[1] batch size N, ARGV[2] "1" to return the payloads moved, "0" to return their count
-- Returns {0, count} or {0, payload, ...} (the leading 0: outputs are never full for fan-out).
-- Pending holds messages a blocking BLMOVE parked; taking them with RPOP here, in the same
-- script as the pushes, means a message is either still pending or on every output, never both.
local n = tonumber(ARGV[1])
local items = redis.call('RPOP', KEYS[1], n) or {}
if #items < n then
  local more = redis.call('RPOP', KEYS[2], n - #items)
  if more then
    for _, item in ipairs(more) do items[#items + 1] = item end
  end
end
if #items > 0 then
  for i = 3, #KEYS do redis.call('LPUSH', KEYS[i], unpack(items)) end
end
if ARGV[2] == '1' then
  table.insert(items, 1, 0)
  return items
end
return {0, #items}
