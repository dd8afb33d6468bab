-- KEYS[NK + 1]: this web process's held set. ARGV: token.
-- A socket opens: a WAITING token held by a socket is never dropped as abandoned.
-- Returns {record, position, cfg_rate, paused, measured, on_sale} or false for an unknown token.
local rec = redis.call('HGET', K_TOK, ARGV[1])
if not rec then
  return false
end
local s, u, t = parse(rec)
local pos = 0
if s == 'W' then
  redis.call('SADD', KEYS[NK + 1], ARGV[1])
  redis.call('ZADD', K_SEEN, '+inf', ARGV[1])
  pos = redis.call('ZCOUNT', K_Q, '-inf', t)
end
local r = rate_info()
return {rec, pos, r[1], r[2], r[3], r[4]}
