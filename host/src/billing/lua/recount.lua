-- Debits whose rows one Postgres transaction just committed (ledger::recount), checked
-- against the account's rebuild (load.lua's `epoch` and `epoch-snapshot`). A rebuild by
-- another gateway from a snapshot that did not see the transaction counted neither the rows
-- nor (as this gateway's unrecorded debits) their settlement, when that was applied before
-- the rebuild, under another epoch: those debits are applied now. A rebuild by this gateway
-- subtracted them as unrecorded; one that saw the transaction counts the rows.
-- KEYS[1] account hash, KEYS[2] this check's marker (the gateway and transaction: a debit
-- sent again after a lost answer is not applied twice). ARGV[1] this gateway's id, ARGV[2]
-- the transaction id, ARGV[3] '1' when every row was new ('0': some were recorded earlier,
-- maybe seen by the rebuild: then the account is marked for a rebuild instead), ARGV[4..]
-- pairs (epoch, cost).
-- Returns the nano-USD debited now, 0 for nothing to do, -1 when marked for a rebuild, -2
-- when the account is not loaded: the transaction is added to its `must-see` list, and
-- load.lua refuses a snapshot that does not see it (a rebuild reading Postgres right now
-- may have read it before this commit), so whichever load completes counts the rows.
if redis.call('EXISTS', KEYS[2]) == 1 then
  return 0
end
if redis.call('HGET', KEYS[1], 'loaded') ~= '1' then
  local must = redis.call('HGET', KEYS[1], 'must-see') or ''
  if not string.find(' ' .. must .. ' ', ' ' .. ARGV[2] .. ' ', 1, true) then
    redis.call('HSET', KEYS[1], 'must-see', must == '' and ARGV[2] or (must .. ' ' .. ARGV[2]))
  end
  return -2
end
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if not epoch or string.sub(epoch, 1, #ARGV[1] + 1) == ARGV[1] .. '@' then
  return 0
end
local owed = 0
for i = 4, #ARGV - 1, 2 do
  if ARGV[i] ~= epoch then
    owed = owed + tonumber(ARGV[i + 1])
  end
end
if owed == 0 then
  return 0
end
local saw = snapshot_saw(redis.call('HGET', KEYS[1], 'epoch-snapshot'), ARGV[2])
if saw then
  return 0
end
if saw == nil or ARGV[3] ~= '1' then
  mark_for_rebuild(KEYS[1])
  return -1
end
-- Only a debit changes what running the check again would do: it is marked (every other
-- answer stays right, since any rebuild from now on sees the transaction).
-- (The debit before its marker: a marker without its debit would answer every retry 0.)
redis.call('HINCRBY', KEYS[1], 'available', string.format('%.0f', 0 - owed))
redis.call('SET', KEYS[2], '1', 'EX', 600)
return owed
