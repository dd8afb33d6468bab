-- ARGV: token. A poll: counts as a sign of life for a WAITING token.
-- Returns {record, position, cfg_rate, paused, measured, on_sale} or false for an unknown token.
local rec = redis.call('HGET', K_TOK, ARGV[1])
if not rec then
  return false
end
local s, u, t = parse(rec)
local pos = 0
if s == 'W' then
  -- GT: a token held by a socket scores +inf and keeps it.
  redis.call('ZADD', K_SEEN, 'GT', now_ms(), ARGV[1])
  pos = redis.call('ZCOUNT', K_Q, '-inf', t)
end
local r = rate_info()
return {rec, pos, r[1], r[2], r[3], r[4]}
