-- Move one message from KEYS[1] to KEYS[2] (used by the tests of the script registry).
-- KEYS[1] source list, KEYS[2] destination list. Returns the payload or nil.
return redis.call('LMOVE', KEYS[1], KEYS[2], 'RIGHT', 'LEFT')
