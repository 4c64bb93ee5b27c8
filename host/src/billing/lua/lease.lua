-- Size, renew or return one gateway's lease of a tenant's balance (billing/lease_sync.rs):
-- the lease is a hold like a request's, under the id `lease <replica>/<n>`.
-- KEYS[1] account hash, KEYS[2] holds hash, KEYS[3] hold expiry zset.
-- ARGV[1] lease id, ARGV[2] amount: > 0 take up to it from `available`, < 0 give it back,
-- 0 renew only; ARGV[3] '1' when the lease should exist already; ARGV[4] lease ttl (ms);
-- ARGV[5] '1' to close (give back all the hold has left, then drop it); ARGV[6] the least
-- `available` a lease is taken from; ARGV[7] this call's sequence number (increasing per
-- gateway); ARGV[8] the number of the last call the gateway saw applied to this lease ('0'
-- for a new one). The account keeps `lease-seq:<id>` = '<seq>:<moved>' of the last call
-- applied: a call sent again by the client library after a dropped connection gets the first
-- answer and is not applied twice; a call that finds another number there is not for the
-- lease Redis holds (a failover lost a call, a rebuild after the sweeper's drop, a call whose
-- answer was lost) and is answered as lost, except a close. Amounts are written with
-- '%.0f' (Lua prints numbers with 14 digits). `dropped:<ms>` marks a lease the sweeper dropped (lease_drop.lua), never held
-- again. A take is at most an eighth of `available`, so leases leave the account to the other
-- gateways' requests.
-- The account's `leases` counts the leases held (reserve.lua reads it; load.lua recounts).
-- Returns {code, moved, available}: 1 done (moved: taken > 0, given back < 0), -1 the lease
-- is gone or not the one the gateway knows, -2 account not loaded.
if redis.call('HGET', KEYS[1], 'loaded') ~= '1' then
  return {-2, 0, 0}
end
local id = ARGV[1]
local available = tonumber(redis.call('HGET', KEYS[1], 'available') or '0')
local seq_field = 'lease-seq:' .. id
local stored = redis.call('HGET', KEYS[1], seq_field)
if stored and string.sub(stored, 1, 7) == 'dropped' then
  if ARGV[5] == '1' then
    redis.call('HDEL', KEYS[1], seq_field)
  end
  return {-1, 0, available}
end
local stored_seq, stored_moved = '0', 0
if stored then
  local colon = string.find(stored, ':', 1, true)
  stored_seq, stored_moved = string.sub(stored, 1, colon - 1), tonumber(string.sub(stored, colon + 1))
end
if stored_seq == ARGV[7] then
  return {1, stored_moved, available}
end
local current = redis.call('HGET', KEYS[2], id)
-- A close gives back whatever the lease holds, whichever call Redis applied last: it is sent
-- only once nothing runs under the lease (so one whose last call's answer was lost is closed
-- all the same).
if (stored_seq ~= ARGV[8] and ARGV[5] ~= '1') or (ARGV[3] == '1' and not current) then
  return {-1, 0, available}
end
current = tonumber(current or '0')
local amount = tonumber(ARGV[2])
local moved = 0
if ARGV[5] == '1' then
  moved = 0 - current
elseif amount < 0 then
  moved = math.max(amount, 0 - current)
elseif amount > 0 and available >= tonumber(ARGV[6]) then
  moved = math.min(amount, math.floor(available / 8))
end
if moved ~= 0 then
  redis.call('HINCRBY', KEYS[1], 'held', string.format('%.0f', moved))
  available = redis.call('HINCRBY', KEYS[1], 'available', string.format('%.0f', 0 - moved))
end
current = current + moved
if ARGV[5] == '1' or current <= 0 and ARGV[3] ~= '1' then
  if redis.call('HDEL', KEYS[2], id) == 1 then
    redis.call('HINCRBY', KEYS[1], 'leases', -1)
  end
  redis.call('ZREM', KEYS[3], id)
  redis.call('HDEL', KEYS[1], seq_field)
else
  if redis.call('HEXISTS', KEYS[2], id) == 0 then
    redis.call('HINCRBY', KEYS[1], 'leases', 1)
  end
  local t = redis.call('TIME')
  local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  redis.call('HSET', KEYS[2], id, string.format('%.0f', current))
  redis.call('ZADD', KEYS[3], now_ms + tonumber(ARGV[4]), id)
  redis.call('HSET', KEYS[1], seq_field, ARGV[7] .. ':' .. string.format('%.0f', moved))
end
return {1, moved, available}
