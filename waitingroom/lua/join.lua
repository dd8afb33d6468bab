-- ARGV: user id, new token. Reuses the user's live token, else takes the next ticket.
-- Returns {created, token, record, position, cfg_rate, paused, measured, on_sale}.
local now = now_ms()
local token = ARGV[2]
-- The user's entry names the new token unless it named one already: a first join (nearly
-- every join of a sale) writes it in this one call, and a user who had a token is looked at.
if redis.call('HSETNX', K_USERS, ARGV[1], token) == 0 then
  local existing = redis.call('HGET', K_USERS, ARGV[1])
  local rec = redis.call('HGET', K_TOK, existing)
  if rec then
    local s, u, t = parse(rec)
    if s == 'W' then
      redis.call('ZADD', K_SEEN, 'GT', now, existing)
      local r = rate_info()
      return {0, existing, rec, redis.call('ZCOUNT', K_Q, '-inf', t), r[1], r[2], r[3], r[4]}
    elseif s == 'A' then
      local r = rate_info()
      return {0, existing, rec, 0, r[1], r[2], r[3], r[4]}
    end
  end
  redis.call('HSET', K_USERS, ARGV[1], token)  -- that token is over: the user's is the new one
end
-- One read of the concert's settings: the rate figures, and a scheduled opening not drawn yet,
-- for which the token waits in the pre-queue, ticket 0 (draw.lua).
local cfg = redis.call('HMGET', K_CFG, 'admit_rate', 'paused', 'opens_at')
local opens = tonumber(cfg[3])
if opens then
  local score = PRE_SCORE
  if now >= opens then
    score = LATE_SCORE + redis.call('HINCRBY', K_STATE, 'late', 1)
  end
  local rec = pack('W', ARGV[1], 0, '', '')
  redis.call('ZADD', K_Q, score, token)
  redis.call('HSET', K_TOK, token, rec)
  redis.call('ZADD', K_SEEN, now, token)
  local r = rate_info(cfg)
  return {1, token, rec, 0, r[1], r[2], r[3], r[4]}
end
local ticket = redis.call('INCR', K_SEQ)
local rec = pack('W', ARGV[1], ticket, '', '')
redis.call('ZADD', K_Q, ticket, token)
redis.call('HSET', K_TOK, token, rec)
redis.call('ZADD', K_SEEN, now, token)
local r = rate_info(cfg)
-- Its ticket is the highest score in the queue (pre-queue scores are below every ticket): its
-- position is the queue's size, read in constant time.
return {1, token, rec, redis.call('ZCARD', K_Q), r[1], r[2], r[3], r[4]}
