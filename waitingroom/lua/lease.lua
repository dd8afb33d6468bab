-- KEYS[1]: the process lease set. ARGV: process id, lease ms.
-- Renews this web process's lease. Returns {1 if the lease had lapsed (or is new), live ids...}.
local now = now_ms()
local lapsed = redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
local live = redis.call('ZRANGEBYSCORE', KEYS[1], now, '+inf')
table.insert(live, 1, lapsed)
return live
