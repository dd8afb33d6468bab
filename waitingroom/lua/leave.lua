-- ARGV: token, reason, required state ('' for any live state).
-- Returns {former state, user, ticket, expires_ms} or false for an unknown token.
local rec = redis.call('HGET', K_TOK, ARGV[1])
if not rec then
  return false
end
local s, u, t, e = parse(rec)
if s ~= 'E' and (ARGV[3] == '' or ARGV[3] == s) then
  expire(ARGV[1], rec, ARGV[2], now_ms())
end
return {s, u, t, e}
