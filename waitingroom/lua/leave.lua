-- ARGV: token, reason, required state ('' for any live state), the concert's channel and the
-- event that tells its sockets (published here: a round trip less than publishing after).
-- Returns the record as it was before, or false for an unknown token.
local rec = redis.call('HGET', K_TOK, ARGV[1])
if not rec then
  return false
end
local s = parse(rec)
if s ~= 'E' and (ARGV[3] == '' or ARGV[3] == s) then
  expire(ARGV[1], rec, ARGV[2], now_ms())
  redis.call('PUBLISH', ARGV[4], ARGV[5])
end
return rec
