-- KEYS[NK + 1 ..]: cohorts (hash), cohort index (zset), next whole minute (zset), errors (list).
-- ARGV: tokens scored at most per call, least wait scored (ms), errors kept, default rate, then
-- the tickets just admitted, in order.
-- The gateway's own ETA accuracy, at a cost per tick rather than per token. The tokens that
-- joined since the last call form one cohort; its ETA is noted now and at each whole minute of
-- waiting (the position of its first ticket and the rate, which give every member's ETA as a
-- client was told it). When a ticket is admitted, each noted prediction is scored against the
-- wait that followed: |predicted - actual| / actual.
-- Returns the number of errors recorded.
local K_COH, K_IDX, K_DUE, K_ERR = KEYS[NK + 1], KEYS[NK + 2], KEYS[NK + 3], KEYS[NK + 4]
local per_call, least, keep = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local MINUTE, MOST_NOTES, DUE_BATCH = 60000, 60, 1000
local now = now_ms()

-- The ETA a client is given now (records.RateInfo.eta): none while paused or sold out.
local r = rate_info()
local measured = r[3] and tonumber(string.match(r[3], '^([^:]*)'))
local rate = measured or tonumber(r[1] or ARGV[4])
local predicting = r[2] ~= '1' and r[4] ~= '0' and rate ~= nil and rate > 0
local function note(first)
  return ';' .. now .. ',' .. redis.call('ZCOUNT', K_Q, '-inf', first) .. ',' .. rate
end

-- A new cohort: every ticket issued since the last call. "last;ms,position,rate;..."
local issued = tonumber(redis.call('GET', K_SEQ) or 0)
local last = tonumber(redis.call('HGET', K_COH, 'issued') or 0)
if issued < last then
  -- Redis lost the queue and it started again: so do the cohorts.
  redis.call('DEL', K_COH, K_IDX, K_DUE)
  last = 0
end
if issued > last then
  local first = last + 1
  redis.call('HSET', K_COH, first, issued .. (predicting and note(first) or ''), 'issued', issued)
  redis.call('ZADD', K_IDX, first, first)
  redis.call('ZADD', K_DUE, now + MINUTE, first)
end

-- Cohorts a whole minute older since their last note.
for _, first in ipairs(redis.call('ZRANGEBYSCORE', K_DUE, '-inf', now, 'LIMIT', 0, DUE_BATCH)) do
  local entry = redis.call('HGET', K_COH, first)
  if entry then
    local _, notes = string.gsub(entry, ';', '')
    if predicting and notes < MOST_NOTES then
      redis.call('HSET', K_COH, first, entry .. note(first))
    end
    redis.call('ZINCRBY', K_DUE, MINUTE, first)
  else
    redis.call('ZREM', K_DUE, first)
  end
end

-- Score the admitted tickets (evenly spread, per_call at most) against their cohort's notes.
local recorded = 0
local count = #ARGV - 4
local step = math.max(1, math.ceil(count / per_call))
local c_first, c_last, c_notes = nil, -1, {}
for i = 5, #ARGV, step do
  local t = tonumber(ARGV[i])
  if c_first == nil or t < c_first or t > c_last then
    c_first, c_last, c_notes = nil, -1, {}
    local f = redis.call('ZREVRANGEBYSCORE', K_IDX, t, '-inf', 'LIMIT', 0, 1)[1]
    local entry = f and redis.call('HGET', K_COH, f)
    if entry then
      c_first = tonumber(f)
      local parts = {}
      for part in string.gmatch(entry, '[^;]+') do
        parts[#parts + 1] = part
      end
      c_last = tonumber(parts[1])
      for k = 2, #parts do
        local ms, pos, at = string.match(parts[k], '^(%d+),(%d+),(.+)$')
        c_notes[#c_notes + 1] = {tonumber(ms), tonumber(pos), tonumber(at)}
      end
    end
  end
  if c_first and t <= c_last then
    for _, n in ipairs(c_notes) do
      local actual = now - n[1]
      if actual >= least then
        -- As the client saw it: whole seconds, rounded up.
        local predicted = math.ceil((n[2] + t - c_first) / n[3]) * 1000
        redis.call('LPUSH', K_ERR, string.format('%.4f', math.abs(predicted - actual) / actual))
        recorded = recorded + 1
      end
    end
  end
end
if recorded > 0 then
  redis.call('LTRIM', K_ERR, 0, keep - 1)
end

-- Cohorts wholly behind the admission cursor are done.
local cursor = tonumber(redis.call('HGET', K_STATE, 'cursor') or 0)
for _, first in ipairs(redis.call('ZRANGEBYSCORE', K_IDX, '-inf', cursor, 'LIMIT', 0, DUE_BATCH)) do
  local entry = redis.call('HGET', K_COH, first)
  if not entry or tonumber(string.match(entry, '^(%d+)')) <= cursor then
    redis.call('HDEL', K_COH, first)
    redis.call('ZREM', K_IDX, first)
    redis.call('ZREM', K_DUE, first)
  end
end
return recorded
