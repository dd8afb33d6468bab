-- ARGV: the last departure sequence number read, or '' for none.
-- One concert's queue as a position tick reads it, at one moment: the cursor, the departures
-- (all of them ahead of the cursor when ARGV[1] is '', else those logged after it), the rate
-- figures and the highest ticket issued. Read only; one slot, so the same on Redis Cluster.
-- Returns {cursor, depseq, measured, on_sale, cfg_rate, paused, issued, {ticket...}}.
local st = redis.call('HMGET', K_STATE, 'cursor', 'depseq', 'rate', 'on_sale')
local cfg = redis.call('HMGET', K_CFG, 'admit_rate', 'paused')
local departed
if ARGV[1] == '' then
  departed = redis.call('ZRANGE', K_DEP, 0, -1)
else
  departed = redis.call('ZRANGEBYSCORE', K_DEPLOG, '(' .. ARGV[1], '+inf')
end
return {st[1] or false, st[2] or false, st[3] or false, st[4] or false, cfg[1] or false,
        cfg[2] or false, redis.call('GET', K_SEQ) or false, departed}
