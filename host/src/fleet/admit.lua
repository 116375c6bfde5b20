-- Admit one request of a team: its rate limits (GCRA, one theoretical arrival time per limit)
-- and its budget (settled spending of the window plus open reservations), in one call.
-- KEYS: 1 requests TAT, 2 tokens TAT, 3 the window's spending, 4 reserved total,
--       5 reservations by expiry (zset), 6 reservation amounts (hash)
-- ARGV: 1 request interval (us, 0: no limit), 2 a token limit (1) or none (0), 3 burst (us),
--       4 the estimated tokens' span of the token limit (us), 5 budget (micro-dollars, 0: none),
--       6 reservation (micro-dollars), 7 request id, 8 reservation lifetime (us),
--       9 admit when over budget (1: the team downgrades)
-- Returns {verdict, a, b}: {0, spent, reserved} admitted; {4, spent, reserved} admitted over
-- budget; {1, retry_us} requests limited; {2, retry_us} tokens limited; {3, spent, reserved}
-- over budget; {5, spent, reserved} the rest of the budget is reserved by requests in flight.
local now = now_us()
local rint, burst = tonumber(ARGV[1]), tonumber(ARGV[3])

local rtat
if rint > 0 then
  rtat = math.max(tonumber(redis.call('GET', KEYS[1]) or now), now) + rint
  if rtat - now > burst then return {1, num(rtat - burst - now)} end
end
local ttat
if ARGV[2] == '1' then
  local tat = math.max(tonumber(redis.call('GET', KEYS[2]) or now), now)
  if tat - now >= burst then return {2, num(tat - burst - now + 1000000)} end
  ttat = tat + tonumber(ARGV[4])
end

local limit, reserve, id = tonumber(ARGV[5]), tonumber(ARGV[6]), ARGV[7]
local spent, reserved, verdict = 0, 0, 0
if limit > 0 then
  local expired = redis.call('ZRANGEBYSCORE', KEYS[5], '-inf', now)
  for _, old in ipairs(expired) do unreserve(KEYS[4], KEYS[5], KEYS[6], old) end
  if #expired > 0 then redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', now) end
  spent = tonumber(redis.call('GET', KEYS[3]) or 0)
  reserved = math.max(tonumber(redis.call('GET', KEYS[4]) or 0), 0)
  if spent >= limit then
    if ARGV[9] ~= '1' then return {3, num(spent), num(reserved)} end
    verdict = 4
  elseif spent + reserved >= limit then
    return {5, num(spent), num(reserved)}
  end
end

if rint > 0 then redis.call('SET', KEYS[1], num(rtat), 'PX', num((rtat - now) / 1000 + 1000)) end
if ttat then redis.call('SET', KEYS[2], num(ttat), 'PX', num((ttat - now) / 1000 + 1000)) end
if limit > 0 and reserve > 0 then
  redis.call('INCRBY', KEYS[4], num(reserve))
  redis.call('ZADD', KEYS[5], num(now + tonumber(ARGV[8])), id)
  redis.call('HSET', KEYS[6], id, num(reserve))
end
return {verdict, num(spent), num(reserved)}
