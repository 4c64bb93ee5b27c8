-- A settlement that could not be applied while Redis was unreachable (its row is recorded,
-- its debit registered as unrecorded): drop the request's hold, record its state, and mark
-- the account for a rebuild from Postgres, which counts the debit exactly once (recorded,
-- or still pending in this gateway). Applying the debit itself instead could count it twice
-- if the account was rebuilt in between.
-- KEYS[1] account hash, KEYS[2] holds hash, KEYS[3] hold expiry zset, KEYS[4] the request's
-- state key. ARGV[1] request id, ARGV[2] cost, ARGV[3] state ttl (s), ARGV[4] the lease it
-- was held from ('' for its own hold): the cost comes out of that lease's hold, as settling
-- would have taken it (the rebuild recounts `held`). Returns 1.
if redis.call('HDEL', KEYS[2], ARGV[1]) == 1 then
  redis.call('ZREM', KEYS[3], ARGV[1])
end
-- A state already there means the settlement was applied after all (its answer was lost):
-- its cost is out of the lease already.
if ARGV[4] ~= '' and redis.call('EXISTS', KEYS[4]) == 0 then
  local lease = redis.call('HGET', KEYS[2], ARGV[4])
  if lease then
    redis.call('HINCRBY', KEYS[2], ARGV[4], 0 - math.min(tonumber(lease), tonumber(ARGV[2])))
  end
end
redis.call('SET', KEYS[4], 'settled:' .. ARGV[2], 'EX', tonumber(ARGV[3]))
mark_for_rebuild(KEYS[1])
return 1
