-- Give back what an admitted request took when it was not served: its reservation, its place
-- in the request limit and its estimated tokens.
-- KEYS: 1 requests TAT, 2 tokens TAT, 3 reserved total, 4 reservations by expiry,
--       5 reservation amounts
-- ARGV: 1 request id, 2 request interval (us), 3 the estimated tokens' span of the token limit (us)
local id = ARGV[1]
unreserve(KEYS[3], KEYS[4], KEYS[5], id)
for i, back in ipairs({tonumber(ARGV[2]), tonumber(ARGV[3])}) do
  local tat = redis.call('GET', KEYS[i])
  if back > 0 and tat then
    redis.call('SET', KEYS[i], num(tonumber(tat) - back), 'KEEPTTL')
  end
end
return 1
