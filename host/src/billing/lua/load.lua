-- Initialise a tenant's account from Postgres unless another gateway already did.
-- KEYS[1] account hash, KEYS[2] holds hash, KEYS[3..] markers of recent credits included
-- in the balance. ARGV[1] credits - recorded debits - this gateway's unrecorded debits
-- (nano-USD), ARGV[2] marker ttl (s). Open holds that survived stay held.
-- Returns 1 when loaded now, 0 when it was already loaded.
if redis.call('HGET', KEYS[1], 'loaded') == '1' then
  return 0
end
local held = 0
for _, v in ipairs(redis.call('HVALS', KEYS[2])) do
  held = held + tonumber(v)
end
redis.call('HSET', KEYS[1], 'available', tonumber(ARGV[1]) - held, 'held', held, 'loaded', '1')
-- Credits already counted here must not be applied again by their own credit call.
for i = 3, #KEYS do
  redis.call('SET', KEYS[i], '1', 'EX', tonumber(ARGV[2]))
end
return 1
