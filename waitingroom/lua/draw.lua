-- The opening's draw. ARGV: the opening (ms) as the configuration holds it, then token, HMAC
-- pairs in the drawn order (ascending HMAC) of the pre-queue tokens that joined before it.
-- They take the next tickets in that order; then those that joined after the opening but before
-- this draw, in their order of arrival; everyone joining later is behind them all. The opening
-- is cleared (admission starts) and the HMACs of the tokens placed are kept in the state hash
-- until PostgreSQL has them (draw_hmacs, draw_opens).
-- Returns {status, placed}: status 1 drawn; 0 nothing to draw (no such opening, or not yet);
-- -1 the list given is not the whole pre-queue (read it again).
local opens = redis.call('HGET', K_CFG, 'opens_at')
if opens ~= ARGV[1] or now_ms() < tonumber(opens) then
  return {0, 0}
end
local n = (#ARGV - 1) / 2
local present = 0
for i = 0, n - 1 do
  if tonumber(redis.call('ZSCORE', K_Q, ARGV[2 + 2 * i]) or 0) == PRE_SCORE then
    present = present + 1
  end
end
if redis.call('ZCOUNT', K_Q, PRE_SCORE, PRE_SCORE) ~= present then
  return {-1, 0}
end
local function place(token)
  local ticket = redis.call('INCR', K_SEQ)
  local _, u = parse(redis.call('HGET', K_TOK, token))
  redis.call('ZADD', K_Q, ticket, token)
  redis.call('HSET', K_TOK, token, pack('W', u, ticket, '', ''))
end
local hmacs = {}
for i = 0, n - 1 do
  local token = ARGV[2 + 2 * i]
  if tonumber(redis.call('ZSCORE', K_Q, token) or 0) == PRE_SCORE then
    place(token)
    hmacs[#hmacs + 1] = ARGV[3 + 2 * i]
  end
end
for _, token in ipairs(redis.call('ZRANGEBYSCORE', K_Q, AFTER_PRE, '(0')) do
  place(token)
end
redis.call('HDEL', K_CFG, 'opens_at')
redis.call('HDEL', K_STATE, 'late')
redis.call('HSET', K_STATE, 'draw_opens', opens, 'draw_hmacs', table.concat(hmacs))
return {1, #hmacs}
