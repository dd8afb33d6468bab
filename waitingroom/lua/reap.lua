-- ARGV: number of dead processes n. KEYS[NK + 1 .. NK + n]: dead processes' held sets; the rest: live
-- ones.
-- Tokens whose only sockets were on a dead process start their grace period now.
local n = tonumber(ARGV[1])
local now = now_ms()
local released = 0
for i = NK + 1, NK + n do
  for _, token in ipairs(redis.call('SMEMBERS', KEYS[i])) do
    local held = false
    for j = NK + n + 1, #KEYS do
      if redis.call('SISMEMBER', KEYS[j], token) == 1 then
        held = true
        break
      end
    end
    if not held then
      released = released + redis.call('ZADD', K_SEEN, 'XX', 'CH', now, token)
    end
  end
  redis.call('DEL', KEYS[i])
end
return released
