-- KEYS[1]: the process lease set. ARGV: process id, lease ms.
-- Renews this web process's lease. Returns {1 if the lease had lapsed (or is new), live ids...}.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local lapsed = redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
local live = redis.call('ZRANGEBYSCORE', KEYS[1], now, '+inf')
table.insert(live, 1, lapsed)
return live
