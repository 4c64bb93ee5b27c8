-- Extend the holds of requests that are still running, so the sweeper never releases a
-- hold whose request is alive. KEYS[1] hold expiry zset. ARGV[1] hold ttl (ms), ARGV[2..]
-- request ids. Only holds still open are touched (XX); an expiry never moves earlier (GT).
-- Returns how many were extended.
local t = redis.call('TIME')
local until_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + tonumber(ARGV[1])
local renewed = 0
for i = 2, #ARGV do
  renewed = renewed + redis.call('ZADD', KEYS[1], 'XX', 'GT', 'CH', until_ms, ARGV[i])
end
return renewed
