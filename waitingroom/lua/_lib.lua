-- Shared prelude, prepended to every concert script. KEYS[1] is the concert's key prefix
-- (keys.ConcertKeys.prefix): its keys are named here from it, so that a call passes one key
-- instead of twelve. They carry the prefix's hash tag, so on a Redis Cluster they live in the
-- slot the call is routed to. KEYS[NK + 1 ..] are script-specific.
local NK = 1
local P = KEYS[1]
local K_SEQ, K_Q, K_ACT, K_TOK = P .. 'seq', P .. 'q', P .. 'active', P .. 'tok'
local K_USERS, K_SEEN, K_DEP, K_DEPLOG = P .. 'users', P .. 'seen', P .. 'dep', P .. 'deplog'
local K_STATE, K_CFG, K_GONE, K_HIST = P .. 'state', P .. 'cfg', P .. 'gone', P .. 'hist'

-- Redis's clock, never a host's: every process agrees on it.
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Queue scores of pre-queue tokens (ticket 0) before the draw: those who joined before the
-- opening all score PRE_SCORE; those who joined after it but before the draw, LATE_SCORE plus
-- their arrival number. Every real ticket scores 1 or more.
local PRE_SCORE, LATE_SCORE = -4503599627370496, -2251799813685248
local AFTER_PRE = '(-4503599627370496'  -- as a range bound; Lua's own tostring would round it

-- A token record is "state|user|ticket|expires_ms|reason", state W(aiting), A(vailable), E(xpired).
local function parse(rec)
  return string.match(rec, '^(%a)|([^|]*)|([^|]*)|([^|]*)|([^|]*)$')
end

local function pack(s, u, t, e, r)
  return s .. '|' .. u .. '|' .. t .. '|' .. e .. '|' .. r
end

-- The figures a client needs for an ETA: configured rate, paused flag, measured rate, and the
-- seats on sale as the admitter last counted them (false: not known). `cfg`: the reply of an
-- HMGET of the concert's settings whose first fields are admit_rate and paused, when the
-- caller has read them already.
local function rate_info(cfg)
  cfg = cfg or redis.call('HMGET', K_CFG, 'admit_rate', 'paused')
  local st = redis.call('HMGET', K_STATE, 'rate', 'on_sale')
  return {cfg[1] or false, cfg[2] or false, st[1] or false, st[2] or false}
end

-- A WAITING ticket leaves the queue ahead of the cursor: record it so that every web process
-- can work out its own sockets' positions without a round trip per socket.
local function depart(ticket)
  redis.call('ZADD', K_DEP, ticket, ticket)
  local seq = redis.call('HINCRBY', K_STATE, 'depseq', 1)
  redis.call('ZADD', K_DEPLOG, seq, ticket)
end

-- End a live token for good; returns its former state.
local function expire(token, rec, reason, now)
  local s, u, t, e = parse(rec)
  if s == 'W' then
    redis.call('ZREM', K_Q, token)
    redis.call('ZREM', K_SEEN, token)
    if t ~= '0' then
      depart(t)
    end
  elseif s == 'A' then
    redis.call('ZREM', K_ACT, token)
  end
  if redis.call('HGET', K_USERS, u) == token then
    redis.call('HDEL', K_USERS, u)
  end
  redis.call('HSET', K_TOK, token, pack('E', u, t, e, reason))
  redis.call('ZADD', K_GONE, now, token)
  redis.call('HINCRBY', K_STATE, 'ended:' .. reason, 1)  -- the operator's count by reason
  return s
end
