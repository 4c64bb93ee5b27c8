-- Rows a previous run of a gateway left in its spool, now recorded in Postgres: make each
-- one's debit count in Redis exactly once, whatever happened to its hold meanwhile.
-- KEYS[1] account hash, KEYS[2] holds hash, KEYS[3] hold expiry zset, KEYS[3 + i] the state
-- key of row i. ARGV[1] state ttl (s); row i is ARGV[2 * i] (request id), ARGV[2 * i + 1]
-- (its cost, nano-USD, >= 0).
-- Per row, by what Redis knows of the request:
--   settled or released: its settlement ran; nothing to do.
--   an open hold: the run died before settling it. Settled now from the row (as the sweeper
--     would once the hold expired); on an account not loaded the hold is dropped instead,
--     and the rebuild counts the row from Postgres.
--   swept, or nothing at all (its state expired, or Redis lost it): no debit can be shown
--     to have been applied. The account is marked for a rebuild, which counts the row
--     exactly once from Postgres; debiting here instead could count it twice if the account
--     was rebuilt after the row was recorded.
-- Returns {settled, rebuild}: how many holds were settled or dropped, and 1 when the
-- account was marked for a rebuild.
local ttl = tonumber(ARGV[1])
local loaded = redis.call('HGET', KEYS[1], 'loaded') == '1'
local settled, rebuild = 0, 0
for i = 1, #KEYS - 3 do
  local id, cost_text = ARGV[2 * i], ARGV[2 * i + 1]
  local cost = tonumber(cost_text)
  local state = redis.call('GET', KEYS[3 + i])
  local swept = state and string.sub(state, 1, 6) == 'swept:'
  if not state or swept then
    local held = redis.call('HGET', KEYS[2], id)
    if held then
      held = tonumber(held)
      redis.call('HDEL', KEYS[2], id)
      redis.call('ZREM', KEYS[3], id)
      redis.call('HINCRBY', KEYS[1], 'held', -held)
      if loaded then
        redis.call('HINCRBY', KEYS[1], 'available', held - cost)
      end
      settled = settled + 1
    elseif cost > 0 then
      rebuild = 1
    end
    -- A state is kept where Redis had one (the swept id stays refused, now as settled) or
    -- a hold; a row Redis knew nothing of (a refusal, an expired state) leaves no key.
    if held or swept then
      local label = cost > 0 and 'settled:' or 'released:'
      redis.call('SET', KEYS[3 + i], label .. cost_text, 'EX', ttl)
    end
  end
end
if rebuild == 1 and redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('HSET', KEYS[1], 'loaded', '0')
end
return {settled, rebuild}
