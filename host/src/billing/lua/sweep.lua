-- Drop the holds of requests that never settled (their gateway died), if still expired.
-- KEYS[1] account hash, KEYS[2] holds hash, KEYS[3] hold expiry zset, KEYS[3 + i] the
-- request-state key of ARGV[1 + i]. ARGV[1] state ttl (s), ARGV[2..] request ids.
-- The request state becomes 'swept:0', so the id stays refused (a new reservation sees it
-- as finished); if the request does settle later, settle.lua debits it then.
-- Returns how many holds were released.
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local released = 0
for i = 2, #ARGV do
  local rid = ARGV[i]
  local expiry = redis.call('ZSCORE', KEYS[3], rid)
  if expiry and tonumber(expiry) <= now_ms then
    local held = redis.call('HGET', KEYS[2], rid)
    if held then
      redis.call('HDEL', KEYS[2], rid)
      redis.call('HINCRBY', KEYS[1], 'held', 0 - tonumber(held))
      redis.call('HINCRBY', KEYS[1], 'available', tonumber(held))
      released = released + 1
      redis.call('SET', KEYS[2 + i], 'swept:0', 'NX', 'EX', tonumber(ARGV[1]))
    end
    redis.call('ZREM', KEYS[3], rid)
  end
end
return released
