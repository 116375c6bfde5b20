-- Settle one served request, once: its reservation is released, its cost added to the window's
-- spending, and its token limit charged what its usage showed beyond the estimate (or refunded
-- what it showed below). A settlement seen before (the same request id) changes nothing.
-- KEYS: 1 tokens TAT, 2 the window's spending, 3 reserved total, 4 reservations by expiry,
--       5 reservation amounts, 6 the window's settled marks (hash)
-- ARGV: 1 request id, 2 cost (micro-dollars), 3 the token limit's span of the tokens beyond the
--       estimate (us, negative: a refund), 4 spending key lifetime (s), 5 marks' lifetime (s)
-- Returns 1 when settled now, 0 when it was settled before.
local id = ARGV[1]
if redis.call('HSETNX', KEYS[6], id, '1') == 0 then return 0 end
redis.call('EXPIRE', KEYS[6], ARGV[5])
unreserve(KEYS[3], KEYS[4], KEYS[5], id)
local cost = tonumber(ARGV[2])
if cost > 0 then
  redis.call('INCRBY', KEYS[2], num(cost))
  redis.call('EXPIRE', KEYS[2], ARGV[4])
end
local delta = tonumber(ARGV[3])
if delta ~= 0 then
  local now = now_us()
  local tat = math.max(tonumber(redis.call('GET', KEYS[1]) or now), now) + delta
  if tat > now then
    redis.call('SET', KEYS[1], num(tat), 'PX', num((tat - now) / 1000 + 1000))
  else
    -- Refunded past the present: the limit has its whole burst again.
    redis.call('DEL', KEYS[1])
  end
end
return 1
