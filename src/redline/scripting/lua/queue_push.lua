-- queue_push: LPUSH payloads onto a queue and give each an id, in one atomic step (_push.lua).
-- KEYS[1] waiting list   KEYS[2] claim list
-- KEYS[3] ids hash: 'taken' -> list items queue_pop has taken so far; <position> -> '<id>:<n>':
--         push gave the n messages from that position on the ids id, id+1, ... ('<id>': n = 1;
--         1 + taken is the next position queue_pop takes; 'taken' is written first when this
--         makes the hash)
-- KEYS[4] id counter
-- ARGV    the payloads, oldest first
-- Returns the ids, in ARGV order (queue_push_run returns the first and how many instead).
-- include _push.lua
local first, n = push_payloads(KEYS, ARGV)
local ids = {}
for i = 1, n do ids[i] = string.format('%d', first + i - 1) end
return ids
