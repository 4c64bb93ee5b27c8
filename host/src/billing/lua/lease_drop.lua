-- Drop an expired lease (its gateway died or stopped renewing): the sweeper's case for a
-- lease hold. What the gateway spent from it is in its rows, some of which may not be in
-- Postgres yet (its spool), so the lease is not given back as a sum: the account is marked
-- for a rebuild from Postgres, which counts every recorded row once; rows replayed from the
-- gateway's spool later mark it again (left_behind.lua).
-- KEYS[1] account hash, KEYS[2] holds hash, KEYS[3] hold expiry zset. ARGV[1] lease id.
-- Returns 1 dropped, 0 renewed meanwhile (or already gone).
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local expiry = redis.call('ZSCORE', KEYS[3], ARGV[1])
if not expiry or tonumber(expiry) > now_ms then
  return 0
end
redis.call('ZREM', KEYS[3], ARGV[1])
if redis.call('HDEL', KEYS[2], ARGV[1]) == 0 then
  return 0
end
redis.call('HINCRBY', KEYS[1], 'leases', -1)
-- Marked `dropped:<ms>`, so a rebuild by its gateway (alive after all, its rounds stalled)
-- never holds it again, and its calls are answered as lost (lease.lua). A dead gateway never
-- closes its lease, which is what deletes a marker: markers over a day old (and the plain
-- `dropped` older versions wrote) go here. A gateway stalled that long has long stopped
-- spending the lease (its use window is a second), and its calls find no hold.
local fields = redis.call('HGETALL', KEYS[1])
for i = 1, #fields, 2 do
  local value = fields[i + 1]
  if string.sub(fields[i], 1, 10) == 'lease-seq:' and string.sub(value, 1, 7) == 'dropped'
      and (tonumber(string.sub(value, 9)) or 0) < now_ms - 86400000 then
    redis.call('HDEL', KEYS[1], fields[i])
  end
end
redis.call('HSET', KEYS[1], 'lease-seq:' .. ARGV[1], 'dropped:' .. now_ms)
mark_for_rebuild(KEYS[1])
return 1
