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
local pre = {}
for _, token in ipairs(redis.call('ZRANGEBYSCORE', K_Q, PRE_SCORE, PRE_SCORE)) do
  pre[token] = true
end
local drawn = {}  -- ARGV indexes of the tokens still in the pre-queue
for i = 2, #ARGV, 2 do
  if pre[ARGV[i]] then
    drawn[#drawn + 1] = i
    pre[ARGV[i]] = nil
  end
end
if next(pre) ~= nil then
  return {-1, 0}  -- a pre-queue token not in the list
end
local order, hmacs = {}, {}
for _, i in ipairs(drawn) do
  order[#order + 1] = ARGV[i]
  hmacs[#hmacs + 1] = ARGV[i + 1]
end
for _, token in ipairs(redis.call('ZRANGEBYSCORE', K_Q, AFTER_PRE, '(0')) do
  order[#order + 1] = token
end
-- Tickets first .. first + #order - 1, in that order; written CHUNK tokens per command.
local CHUNK = 500
local first = redis.call('INCRBY', K_SEQ, #order) - #order + 1
for from = 1, #order, CHUNK do
  local to = math.min(#order, from + CHUNK - 1)
  local recs = redis.call('HMGET', K_TOK, unpack(order, from, to))
  local z, h = {}, {}
  for j = from, to do
    local _, u = parse(recs[j - from + 1])
    local ticket = first + j - 1
    z[#z + 1] = ticket
    z[#z + 1] = order[j]
    h[#h + 1] = order[j]
    h[#h + 1] = pack('W', u, ticket, '', '')
  end
  redis.call('ZADD', K_Q, unpack(z))
  redis.call('HSET', K_TOK, unpack(h))
end
redis.call('HDEL', K_CFG, 'opens_at')
redis.call('HDEL', K_STATE, 'late')
redis.call('HSET', K_STATE, 'draw_opens', opens, 'draw_hmacs', table.concat(hmacs))
return {1, #hmacs}
