-- Drop the holds of requests that never settled (their gateway died), if still expired.
-- KEYS[1] account hash, KEYS[2] holds hash, KEYS[3] hold expiry zset. ARGV: request ids.
-- The request state is NOT set: if the request does settle later, it is debited then.
-- Returns how many holds were released.
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local released = 0
for _, rid in ipairs(ARGV) do
  local expiry = redis.call('ZSCORE', KEYS[3], rid)
  if expiry and tonumber(expiry) <= now_ms then
    local held = redis.call('HGET', KEYS[2], rid)
    if held then
      redis.call('HDEL', KEYS[2], rid)
      redis.call('HINCRBY', KEYS[1], 'held', -tonumber(held))
      redis.call('HINCRBY', KEYS[1], 'available', tonumber(held))
      released = released + 1
    end
    redis.call('ZREM', KEYS[3], rid)
  end
end
return released
