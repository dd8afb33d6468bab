-- KEYS[12]: this process's held set; KEYS[13..]: other live processes' held sets. ARGV: token.
-- The last socket of a token closes: its grace period starts now.
redis.call('SREM', KEYS[12], ARGV[1])
for i = 13, #KEYS do
  if redis.call('SISMEMBER', KEYS[i], ARGV[1]) == 1 then
    return 0
  end
end
redis.call('ZADD', K_SEEN, 'XX', now_ms(), ARGV[1])
return 1
