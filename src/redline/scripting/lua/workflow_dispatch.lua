-- Push workflow members' jobs onto their queue, each at most once: a member is pushed only if
-- its job id is not yet in the workflow's marker set beside the queue. Called again after a
-- crash (before the dispatch was confirmed in the workflow's state), it pushes nothing twice.
-- KEYS[1] the list the jobs wait in (the queue's own list, or its priority's)
-- KEYS[2] the marker set {queue}:job-wf:<workflow id>   KEYS[3] the queue's set of priorities
-- ARGV[1] priority (0-9)   ARGV[2] marker ttl (seconds)   ARGV[3..] pairs: job id, document
-- Returns how many jobs were pushed.
local docs = {}
for i = 3, #ARGV, 2 do
  if redis.call('SADD', KEYS[2], ARGV[i]) == 1 then docs[#docs + 1] = ARGV[i + 1] end
end
redis.call('EXPIRE', KEYS[2], tonumber(ARGV[2]))
if #docs == 0 then return 0 end
if ARGV[1] ~= '0' then redis.call('SADD', KEYS[3], ARGV[1]) end
for i = 1, #docs, 1000 do
  redis.call('LPUSH', KEYS[1], unpack(docs, i, math.min(i + 999, #docs)))
end
return #docs
