-- KEYS[1]: one subject's rate-limit key. ARGV: emission interval ms, burst window ms.
-- GCRA: allows a burst of window/interval calls, then one per interval. Returns 0 if this call
-- is allowed (and counts it), else the milliseconds until one would be.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local interval, window = tonumber(ARGV[1]), tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then
  tat = now
end
local next_tat = tat + interval
local over = next_tat - now - window
if over > 0 then
  return over
end
redis.call('SET', KEYS[1], next_tat, 'PX', math.max(1, next_tat - now))
return 0
