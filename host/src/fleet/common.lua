-- Helpers every fleet script starts with (prepended when the scripts are made).
-- Redis's clock, in microseconds.
local function now_us()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end
-- A number as Redis stores it: whole, never in exponent notation.
local function num(x) return string.format('%.0f', x) end
-- Drop reservation `id` (from the expiry zset `by_expiry` and the amounts hash `amounts`) and
-- take its amount off the team's `reserved` total, which never goes below zero.
local function unreserve(reserved, by_expiry, amounts, id)
  local amount = redis.call('HGET', amounts, id)
  if not amount then return end
  redis.call('HDEL', amounts, id)
  redis.call('ZREM', by_expiry, id)
  if tonumber(redis.call('DECRBY', reserved, amount)) < 0 then redis.call('SET', reserved, '0') end
end
