-- Recover the in-flight list of a Sidekiq worker process whose heartbeat has expired: its jobs
-- go back to the end of their queue that workers take from, oldest first, so they run next.
-- A job recovered more than ARGV[4] times (its runs keep killing workers) goes to the morgue
-- unchanged instead. The registry entry is removed once it is older than ARGV[3] seconds: a
-- process stalled in a blocking move when it was found dead may still park one job (see
-- docs/sidekiq.md), and a later call moves that one too.
-- KEYS[1] the dead process's heartbeat hash (<identity>), KEYS[2] its in-flight list,
-- KEYS[3] queue:<name>, KEYS[4] the in-flight registry, KEYS[5] the morgue (dead),
-- KEYS[6] the hash of recovery counts by jid.
-- ARGV[1] the registry member, ARGV[2] now, ARGV[3] grace seconds, ARGV[4] most recoveries.
-- Returns {jobs requeued, jobs sent to the morgue}; {-1, 0} when the process is alive.
if redis.call('EXISTS', KEYS[1]) == 1 then
  return {-1, 0}
end
local requeued, buried = 0, 0
while true do
  local job = redis.call('LINDEX', KEYS[2], 0)
  if not job then break end
  local ok, fields = pcall(cjson.decode, job)
  local jid = (ok and type(fields) == 'table' and type(fields.jid) == 'string') and fields.jid
  local times = jid and redis.call('HINCRBY', KEYS[6], jid, 1) or 0
  if times > tonumber(ARGV[4]) then
    redis.call('LPOP', KEYS[2])
    redis.call('ZADD', KEYS[5], ARGV[2], job)
    redis.call('HDEL', KEYS[6], jid)
    buried = buried + 1
  else
    redis.call('LMOVE', KEYS[2], KEYS[3], 'LEFT', 'RIGHT')
    requeued = requeued + 1
  end
end
if requeued > 0 then
  redis.call('EXPIRE', KEYS[6], 86400)
end
local seen = redis.call('ZSCORE', KEYS[4], ARGV[1])
if seen and tonumber(seen) < tonumber(ARGV[2]) - tonumber(ARGV[3]) then
  redis.call('ZREM', KEYS[4], ARGV[1])
end
return {requeued, buried}
