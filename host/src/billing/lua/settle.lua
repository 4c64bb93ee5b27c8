-- Settle a batch of one tenant's requests: turn each one's hold into a debit of its cost
-- and release the rest, once per request.
-- KEYS[1] account hash, KEYS[2] holds hash, KEYS[3] hold expiry zset (as reserve.lua);
-- KEYS[3 + i] request i's state key.
-- Per request i, from ARGV[4 * (i - 1) + 1]: its id, its cost (nano-USD, >= 0), its outcome
-- label ('settled', 'released', or 'cancelled': the hold goes back and no state is kept, so
-- the id stays usable), and how long its state is kept (s).
-- Returns {code, available} per request, flattened: 1 settled now, 2 already settled
-- (nothing changed), -2 account not loaded (rebuild, then retry).
local out = {}
local loaded = redis.call('HGET', KEYS[1], 'loaded') == '1'
for i = 1, #KEYS - 3 do
  local id, cost_text, label, ttl = ARGV[4 * i - 3], ARGV[4 * i - 2], ARGV[4 * i - 1], ARGV[4 * i]
  local cost = tonumber(cost_text)
  local state = redis.call('GET', KEYS[3 + i])
  -- A hold the sweeper released ('swept:0') still owes its debit: settle it now.
  if state and string.sub(state, 1, 6) ~= 'swept:' then
    out[#out + 1] = 2
    out[#out + 1] = tonumber(redis.call('HGET', KEYS[1], 'available') or '0')
  elseif not loaded then
    out[#out + 1] = -2
    out[#out + 1] = 0
  else
    local held = redis.call('HGET', KEYS[2], id)
    local available
    if held then
      held = tonumber(held)
      redis.call('HDEL', KEYS[2], id)
      redis.call('ZREM', KEYS[3], id)
      redis.call('HINCRBY', KEYS[1], 'held', -held)
      available = redis.call('HINCRBY', KEYS[1], 'available', held - cost)
    else
      -- The hold expired and was swept (or Redis lost it): debit directly.
      available = redis.call('HINCRBY', KEYS[1], 'available', -cost)
    end
    if label ~= 'cancelled' then
      redis.call('SET', KEYS[3 + i], label .. ':' .. cost_text, 'EX', tonumber(ttl))
    end
    out[#out + 1] = 1
    out[#out + 1] = available
  end
end
return out
