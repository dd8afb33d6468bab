-- KEYS[NK + 1]: this process's held set; KEYS[NK + 2 ..]: other live processes' held sets. ARGV: token.
-- The last socket of a token closes: its grace period starts now.
redis.call('SREM', KEYS[NK + 1], ARGV[1])
for i = NK + 2, #KEYS do
  if redis.call('SISMEMBER', KEYS[i], ARGV[1]) == 1 then
    return 0
  end
end
redis.call('ZADD', K_SEEN, 'XX', now_ms(), ARGV[1])
return 1
