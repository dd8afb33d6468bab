-- ARGV: token, reason, required state ('' for any live state).
-- Returns the record as it was before, or false for an unknown token.
local rec = redis.call('HGET', K_TOK, ARGV[1])
if not rec then
  return false
end
local s = parse(rec)
if s ~= 'E' and (ARGV[3] == '' or ARGV[3] == s) then
  expire(ARGV[1], rec, ARGV[2], now_ms())
end
return rec
