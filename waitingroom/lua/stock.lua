-- ARGV: seats on sale ('' when not known). Records the admitter's count of a concert's seats on
-- sale; returns 1 if the concert has just sold out, -1 if seats have just come back, else 0.
local before = redis.call('HGET', K_STATE, 'on_sale')
if ARGV[1] == '' then
  redis.call('HDEL', K_STATE, 'on_sale')
else
  redis.call('HSET', K_STATE, 'on_sale', ARGV[1])
end
local was, is = before == '0', ARGV[1] == '0'
if is and not was then
  return 1
elseif was and not is then
  return -1
end
return 0
