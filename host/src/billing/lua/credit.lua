-- Apply a freshly inserted credit (top-up or adjustment) once.
-- KEYS[1] account hash, KEYS[2] the credit's marker key. ARGV[1] amount (nano-USD, may be
-- negative), ARGV[2] marker ttl (s). A credit already applied, or counted by loading, has
-- its marker set.
-- Returns 1 applied, 0 already applied or counted, -1 account not loaded (load, then retry).
if redis.call('HGET', KEYS[1], 'loaded') ~= '1' then
  return -1
end
if redis.call('EXISTS', KEYS[2]) == 1 then
  return 0
end
-- The credit first, then its marker: Redis keeps a script's writes up to an error, and a
-- marker without its credit would answer every retry "already applied".
redis.call('HINCRBY', KEYS[1], 'available', ARGV[1])
redis.call('SET', KEYS[2], '1', 'EX', tonumber(ARGV[2]))
return 1
