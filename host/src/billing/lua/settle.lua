-- Settle a request: turn its hold into a debit of `cost` and release the rest, once.
-- KEYS as reserve.lua. ARGV[1] request id, ARGV[2] cost (nano-USD, >= 0), ARGV[3] outcome
-- label ('settled', 'released', or 'cancelled': the hold goes back and no state is kept, so
-- the id stays usable), ARGV[4] state ttl (s).
-- Returns {code, available}: 1 settled now, 2 already settled (nothing changed),
-- -2 account not loaded (rebuild, then retry).
local state = redis.call('GET', KEYS[4])
-- A hold the sweeper released ('swept:0') still owes its debit: settle it now.
if state and string.sub(state, 1, 6) ~= 'swept:' then
  return {2, tonumber(redis.call('HGET', KEYS[1], 'available') or '0')}
end
if redis.call('HGET', KEYS[1], 'loaded') ~= '1' then
  return {-2, 0}
end
local cost = tonumber(ARGV[2])
local held = redis.call('HGET', KEYS[2], ARGV[1])
if held then
  held = tonumber(held)
  redis.call('HDEL', KEYS[2], ARGV[1])
  redis.call('ZREM', KEYS[3], ARGV[1])
  redis.call('HINCRBY', KEYS[1], 'held', -held)
  redis.call('HINCRBY', KEYS[1], 'available', held - cost)
else
  -- The hold expired and was swept (or Redis lost it): debit directly.
  redis.call('HINCRBY', KEYS[1], 'available', -cost)
end
if ARGV[3] ~= 'cancelled' then
  redis.call('SET', KEYS[4], ARGV[3] .. ':' .. ARGV[2], 'EX', tonumber(ARGV[4]))
end
return {1, tonumber(redis.call('HGET', KEYS[1], 'available'))}
