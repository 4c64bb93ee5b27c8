-- Rows a previous run of a gateway left in its spool and this run inserted into Postgres:
-- make each one's debit count in Redis exactly once, whatever happened to it meanwhile.
-- KEYS[1] account hash, KEYS[2] holds hash, KEYS[3] hold expiry zset, KEYS[3 + i] the state
-- key of row i. ARGV[1] state ttl (s); row i is ARGV[2 * i] (request id), ARGV[2 * i + 1]
-- (its cost, nano-USD, >= 0).
-- Per row:
--   an open hold: the run died before settling it. On a loaded account it is settled now
--     from the row (as the sweeper would once it expired); otherwise it is dropped and the
--     account marked, and the rebuild counts the row.
--   no hold, a cost: whatever the request's state says (settled, swept, or nothing left),
--     its debit cannot be shown to be in the balance now: a settled debit of a row that was
--     not in Postgres is lost by any rebuild while the run was down, a swept hold was
--     released without one. The account is marked for a rebuild, which counts the row once
--     from Postgres; debiting here instead could count it twice.
--   no hold, no cost: nothing.
-- A mark sets `loaded` to 0 and moves the account's generation, so a load already under
-- way with an older snapshot starts again (load.lua). A swept id's state becomes settled.
-- Returns {settled, rebuild}: holds settled or dropped, and 1 when the account was marked.
local ttl = tonumber(ARGV[1])
local loaded = redis.call('HGET', KEYS[1], 'loaded') == '1'
local settled, rebuild = 0, 0
for i = 1, #KEYS - 3 do
  local id, cost_text = ARGV[2 * i], ARGV[2 * i + 1]
  local cost = tonumber(cost_text)
  local label = (cost > 0 and 'settled:' or 'released:') .. cost_text
  local held = redis.call('HGET', KEYS[2], id)
  if held then
    held = tonumber(held)
    redis.call('HDEL', KEYS[2], id)
    redis.call('ZREM', KEYS[3], id)
    redis.call('HINCRBY', KEYS[1], 'held', 0 - held)
    if loaded then
      redis.call('HINCRBY', KEYS[1], 'available', held - cost)
    else
      rebuild = 1
    end
    redis.call('SET', KEYS[3 + i], label, 'EX', ttl)
    settled = settled + 1
  elseif cost > 0 then
    rebuild = 1
    local state = redis.call('GET', KEYS[3 + i])
    if state and string.sub(state, 1, 6) == 'swept:' then
      redis.call('SET', KEYS[3 + i], label, 'EX', ttl)
    end
  end
end
if rebuild == 1 then
  mark_for_rebuild(KEYS[1])
end
return {settled, rebuild}
