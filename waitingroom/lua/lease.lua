-- KEYS[1]: the process lease set. ARGV: process id, lease ms.
-- Renews this web process's lease; returns the ids of every process whose lease is live.
local now = now_ms()
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
return redis.call('ZRANGEBYSCORE', KEYS[1], now, '+inf')
