-- One admission tick of one concert. Safe to run from any number of admitters at once: the
-- budget grows with Redis's clock since the last tick, whoever ran it.
-- ARGV: default rate, default max_active, active ttl ms, wait grace ms, retention ms, batch,
-- tick interval s, departures kept in the log, rate cap ('' none), cap on AVAILABLE tokens
-- after the tick ('' none; inventory-aware admission).
-- Returns {admitted {token, user, ticket, ...}, timed_out {token...}, dropped {token...}, deadline}.
local now = now_ms()
local cfg = redis.call('HMGET', K_CFG, 'admit_rate', 'max_active', 'paused')
local rate = tonumber(cfg[1] or ARGV[1])
local max_active = tonumber(cfg[2] or ARGV[2])
-- Sold out (no seat of the concert on sale, as the admitter last counted): admit nobody, as
-- if paused; waiters keep their places for when seats come back.
-- An opening scheduled and not drawn yet (draw.lua): the sale has not begun, nobody is admitted.
local paused = cfg[3] == '1' or redis.call('HGET', K_STATE, 'on_sale') == '0'
  or redis.call('HEXISTS', K_CFG, 'opens_at') == 1
local ttl, grace, retention = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local batch = tonumber(ARGV[6])
local tick = tonumber(ARGV[7])
local keep = tonumber(ARGV[8])
if ARGV[9] and ARGV[9] ~= '' then
  rate = math.min(rate, tonumber(ARGV[9]))
end
if ARGV[10] and ARGV[10] ~= '' then
  max_active = math.min(max_active, tonumber(ARGV[10]))
end

-- The measured admission rate while people wait: admissions over the last minute once at least
-- MIN_SEEN were seen in it, else over the whole history (up to ten minutes) once it spans
-- LONG_ENOUGH ms; before that, nil (ETAs use the configured rate). One sample per tick.
local MIN_SEEN, LONG_ENOUGH, WINDOW, KEEP = 20, 120000, 60000, 600000
local function sample(entry)
  local ms, total = string.match(entry, '^(%d+):(%d+)$')
  return tonumber(ms), tonumber(total)
end
local function measure(now_ms_, total)
  redis.call('ZADD', K_HIST, now_ms_, now_ms_ .. ':' .. total)
  redis.call('ZREMRANGEBYSCORE', K_HIST, '-inf', now_ms_ - KEEP)
  local recent = redis.call('ZRANGEBYSCORE', K_HIST, now_ms_ - WINDOW, '+inf', 'LIMIT', 0, 1)
  local ms, then_total = sample(recent[1])
  if total - then_total >= MIN_SEEN and now_ms_ - ms >= 5000 then
    return (total - then_total) * 1000 / (now_ms_ - ms)
  end
  ms, then_total = sample(redis.call('ZRANGE', K_HIST, 0, 0)[1])
  local span = now_ms_ - ms
  if span >= LONG_ENOUGH or (total - then_total >= MIN_SEEN and span >= 5000) then
    return (total - then_total) * 1000 / span
  end
  return nil
end

-- How far the rate may be off, relative: an ETA's range is ETA x (1 +- spread). At least
-- SPREAD_MIN; SPREAD_NEW for a measurement just begun (a new rate, a pause lifted, new demand),
-- shrinking over SETTLE ms; and at least the gap between the rate of the last few seconds (the
-- time of MIN_SEEN admissions, 5 s at least) and the measured one, so that a change the window
-- has not caught up with yet widens it.
local SPREAD_MIN, SPREAD_NEW, SPREAD_MAX, SETTLE = 0.05, 0.3, 0.9, 5000
local function trust(now_ms_, total, r)
  local first = sample(redis.call('ZRANGE', K_HIST, 0, 0)[1])
  local s = math.max(SPREAD_MIN, SPREAD_NEW * (1 - (now_ms_ - first) / SETTLE))
  if r and r > 0 then
    local short = math.min(WINDOW / 2, math.max(5000, MIN_SEEN * 1000 / r))
    local ms, then_total = sample(redis.call('ZRANGEBYSCORE', K_HIST, now_ms_ - short, '+inf',
                                             'LIMIT', 0, 1)[1])
    if now_ms_ - ms >= short / 2 then
      s = math.max(s, math.abs((total - then_total) * 1000 / (now_ms_ - ms) - r) / r)
    end
  end
  return math.min(SPREAD_MAX, s)
end

local timed_out = {}
for _, token in ipairs(redis.call('ZRANGEBYSCORE', K_ACT, '-inf', now, 'LIMIT', 0, batch)) do
  local rec = redis.call('HGET', K_TOK, token)
  if rec then
    expire(token, rec, 'timeout', now)
  else
    redis.call('ZREM', K_ACT, token)
  end
  timed_out[#timed_out + 1] = token
end

local dropped = {}
for _, token in ipairs(redis.call('ZRANGEBYSCORE', K_SEEN, '-inf', now - grace, 'LIMIT', 0, batch)) do
  local rec = redis.call('HGET', K_TOK, token)
  if rec and string.sub(rec, 1, 1) == 'W' then
    expire(token, rec, 'dropped', now)
    dropped[#dropped + 1] = token
  else
    redis.call('ZREM', K_SEEN, token)
  end
end
if #dropped > 0 then
  redis.call('HINCRBY', K_STATE, 'dropped_total', #dropped)
end

local st = redis.call('HMGET', K_STATE, 'budget', 'last_ms')
local budget = tonumber(st[1]) or 0
local last = tonumber(st[2])
local measured, spread = nil, nil
local elapsed = 0
if last then
  elapsed = math.max(0, (now - last) / 1000)
end
local waiting = redis.call('ZCARD', K_Q)
local admitted = {}
local deadline = now + ttl
local count = 0
if paused or rate <= 0 then
  budget = 0
else
  -- No banking: a paused or empty queue saves up nothing (below), and a budget that could not
  -- be spent (max_active reached, no admitter running) is capped at about a second's worth.
  -- The cap leaves room for a late tick, so jittery ticks still add up to the exact rate.
  budget = math.min(budget + rate * elapsed, rate * math.max(1, 1.5 * tick) + 1)
  local room = max_active - redis.call('ZCARD', K_ACT)
  local n = math.min(math.floor(budget), room, batch)
  if n > 0 and waiting > 0 then
    local popped = redis.call('ZPOPMIN', K_Q, n)
    local cursor
    for i = 1, #popped, 2 do
      local token, ticket = popped[i], popped[i + 1]
      local _, u = parse(redis.call('HGET', K_TOK, token))
      redis.call('HSET', K_TOK, token, pack('A', u, ticket, deadline, ''))
      redis.call('ZADD', K_ACT, deadline, token)
      redis.call('ZREM', K_SEEN, token)
      cursor = ticket
      admitted[#admitted + 1] = token
      admitted[#admitted + 1] = u
      admitted[#admitted + 1] = ticket
    end
    count = #popped / 2
    budget = budget - count
    redis.call('HSET', K_STATE, 'cursor', cursor)
    redis.call('HINCRBY', K_STATE, 'admitted_total', count)
    redis.call('ZREMRANGEBYSCORE', K_DEP, '-inf', cursor)
  end
  if redis.call('ZCARD', K_Q) == 0 then
    budget = budget - math.floor(budget)
  end
  if waiting > 0 then
    local total = tonumber(redis.call('HGET', K_STATE, 'admitted_total') or 0)
    measured = measure(now, total)
    spread = trust(now, total, measured)
  end
end
redis.call('HSET', K_STATE, 'budget', budget, 'last_ms', now)
-- "rate:spread", or ":spread" while too little is measured (records.RateInfo.parse).
if measured then
  redis.call('HSET', K_STATE, 'rate', measured .. ':' .. spread)
elseif spread then
  redis.call('HSET', K_STATE, 'rate', ':' .. spread)
else
  -- Nobody waiting, or paused: ETAs come from the configured rate, and
  -- a new measurement starts with the next demand.
  redis.call('HDEL', K_STATE, 'rate')
  if waiting == 0 or paused or rate <= 0 then
    redis.call('DEL', K_HIST)
  end
end

local depseq = tonumber(redis.call('HGET', K_STATE, 'depseq') or 0)
if depseq > keep then
  redis.call('ZREMRANGEBYSCORE', K_DEPLOG, '-inf', depseq - keep)
end
for _, token in ipairs(redis.call('ZRANGEBYSCORE', K_GONE, '-inf', now - retention, 'LIMIT', 0, batch)) do
  redis.call('HDEL', K_TOK, token)
  redis.call('ZREM', K_GONE, token)
end
return {admitted, timed_out, dropped, deadline}
