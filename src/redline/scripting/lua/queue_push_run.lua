-- queue_push_run: queue_push with a reply of two numbers rather than an id per payload: the
-- ids a push gives are consecutive (_push.lua), so {first, n} says them all (since 2026-12-07).
-- KEYS[1] waiting list   KEYS[2] claim list   KEYS[3] ids hash   KEYS[4] id counter (as
-- queue_push's)
-- ARGV    the payloads, oldest first
-- Returns {first, n}: the payloads got the ids first, first + 1, ..., first + n - 1, in ARGV
-- order.
-- include _push.lua
local first, n = push_payloads(KEYS, ARGV)
return {first, n}
