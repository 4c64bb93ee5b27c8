-- Reserve `amount` for a request, atomically and idempotently.
-- KEYS[1] account hash {available, held, loaded}, KEYS[2] holds hash (request -> amount),
-- KEYS[3] hold expiry zset, KEYS[4] the request's state key.
-- ARGV[1] request id, ARGV[2] amount (nano-USD), ARGV[3] hold ttl (ms), ARGV[4] '1' for a
-- client's id (checked for a request in flight or finished under it), '0' for a gateway-made
-- one (new: a hold already under it is this same call sent again by the client library after
-- a dropped connection, and answers as reserved without holding twice).
-- Returns {code, available}: 1 reserved, 0 insufficient (then {0, available, leases, held}:
-- how many gateways' leases the account holds, balance leases, and what it holds), 2
-- already held (in progress), 3 already finished, -2 account not loaded (rebuild from
-- Postgres, then retry).
if redis.call('HGET', KEYS[1], 'loaded') ~= '1' then
  return {-2, 0}
end
local available = tonumber(redis.call('HGET', KEYS[1], 'available') or '0')
if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 1 then
  if ARGV[4] == '1' then
    return {2, available}
  end
  return {1, available}
end
if ARGV[4] == '1' and redis.call('EXISTS', KEYS[4]) == 1 then
  return {3, available}
end
local amount = tonumber(ARGV[2])
if available < amount then
  local leases = tonumber(redis.call('HGET', KEYS[1], 'leases') or '0')
  return {0, available, leases, tonumber(redis.call('HGET', KEYS[1], 'held') or '0')}
end
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('HINCRBY', KEYS[1], 'available', 0 - amount)
redis.call('HINCRBY', KEYS[1], 'held', amount)
redis.call('HSET', KEYS[2], ARGV[1], amount)
redis.call('ZADD', KEYS[3], now_ms + tonumber(ARGV[3]), ARGV[1])
return {1, available - amount}
