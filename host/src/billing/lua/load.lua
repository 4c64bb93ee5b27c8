-- Initialise a tenant's account from Postgres unless another gateway already did.
-- KEYS[1] account hash, KEYS[2] holds hash, KEYS[3] hold expiry zset, KEYS[4..] markers of
-- recent credits included in the balance. ARGV[1] credits - recorded debits - this gateway's
-- unrecorded debits (nano-USD), ARGV[2] marker ttl (s), ARGV[3] the account's generation (''
-- for none) read before the open holds and the Postgres snapshot, ARGV[4] lease ttl (ms),
-- ARGV[5] the number n of this gateway's leases, ARGV[6] this gateway's id, ARGV[7] the
-- Postgres snapshot the balance was read in (`pg_current_snapshot()`): the account's `epoch`
-- (`<gateway>@<Redis time>`) and `epoch-snapshot` say who rebuilt it from what, for
-- recount.lua. Then n triples (lease id, what it holds here,
-- the number of its last call): a lease missing from the holds (Redis flushed) is held again,
-- since its money is being spent in that gateway, unless the sweeper dropped it. Then pairs: a request id whose row the balance already counts, and
-- its cost. Open holds that survived stay held; a
-- hold whose row is already counted gets its cost back here, since settling the hold debits
-- it again. An account marked for a rebuild since the generation was read (resync.lua,
-- left_behind.lua: holds dropped, rows recorded after this snapshot) is not loaded from it.
-- Returns 1 when loaded now, 0 when it was already loaded, -1 when the generation moved
-- or the snapshot misses a transaction in `must-see` (read again and retry).
if redis.call('HGET', KEYS[1], 'loaded') == '1' then
  return 0
end
if (redis.call('HGET', KEYS[1], 'gen') or '') ~= ARGV[3] then
  return -1
end
-- Transactions committed while the account was not loaded, whose debits no gateway applied
-- (recount.lua): the snapshot must see them (snapshot.lua).
for xid in string.gmatch(redis.call('HGET', KEYS[1], 'must-see') or '', '%d+') do
  if snapshot_saw(ARGV[7], xid) == false then
    return -1
  end
end
local t = redis.call('TIME')
local leases_end = 7 + 3 * tonumber(ARGV[5])
if leases_end > 7 then
  local until_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + tonumber(ARGV[4])
  for i = 8, leases_end - 2, 3 do
    local seq_field = 'lease-seq:' .. ARGV[i]
    if string.sub(redis.call('HGET', KEYS[1], seq_field) or '', 1, 7) ~= 'dropped' and redis.call('HSETNX', KEYS[2], ARGV[i], ARGV[i + 1]) == 1 then
      redis.call('ZADD', KEYS[3], until_ms, ARGV[i])
      redis.call('HSET', KEYS[1], seq_field, ARGV[i + 2] .. ':0')
    end
  end
end
local held, leases = 0, 0
local all = redis.call('HGETALL', KEYS[2])
for i = 1, #all, 2 do
  held = held + tonumber(all[i + 1])
  if string.sub(all[i], 1, 6) == 'lease ' then
    leases = leases + 1
  end
end
local counted = 0
for i = leases_end + 1, #ARGV - 1, 2 do
  if redis.call('HEXISTS', KEYS[2], ARGV[i]) == 1 then
    counted = counted + tonumber(ARGV[i + 1])
  end
end
-- The balance is set from its text, exact whatever its size (a Lua number is a double), and
-- the small correction added to it by Redis; the account reads as loaded only after both.
redis.call('HSET', KEYS[1], 'available', ARGV[1], 'held', held, 'leases', leases)
redis.call('HINCRBY', KEYS[1], 'available', string.format('%.0f', counted - held))
redis.call('HSET', KEYS[1], 'loaded', '1', 'epoch', ARGV[6] .. '@' .. t[1] .. '.' .. t[2], 'epoch-snapshot', ARGV[7])
redis.call('HDEL', KEYS[1], 'must-see')
-- Credits already counted here must not be applied again by their own credit call.
for i = 4, #KEYS do
  redis.call('SET', KEYS[i], '1', 'EX', tonumber(ARGV[2]))
end
return 1
