-- Settle a batch of one tenant's requests: turn each one's hold into a debit of its cost
-- and release the rest, once per request.
-- KEYS[1] account hash, KEYS[2] holds hash, KEYS[3] hold expiry zset (as reserve.lua);
-- KEYS[3 + i] request i's state key.
-- Per request i, from ARGV[5 * (i - 1) + 1]: its id, its cost (nano-USD, >= 0), its outcome
-- label ('settled', 'released', or 'cancelled': the hold goes back and no state is kept, so
-- the id stays usable), how long its state is kept (s), and the lease it was held from ('' for
-- its own hold): a leased request's cost comes out of the lease's hold (what the lease lacks,
-- out of `available`); the rest of the lease stays held for its gateway.
-- Returns {code, available} per request, flattened: 1 settled now, 3 settled now but the lease
-- was gone (debited from `available`), 2 already settled (nothing changed), -2 account not
-- loaded (rebuild, then retry); then the account's epoch ('' for none).
local out = {}
local loaded = redis.call('HGET', KEYS[1], 'loaded') == '1'
for i = 1, #KEYS - 3 do
  local id, cost_text, label, ttl = ARGV[5 * i - 4], ARGV[5 * i - 3], ARGV[5 * i - 2], ARGV[5 * i - 1]
  local lease = ARGV[5 * i]
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
    local held = redis.call('HGET', KEYS[2], lease ~= '' and lease or id)
    local available, code = nil, 1
    if lease ~= '' then
      local from_lease = 0
      if held then
        from_lease = math.min(tonumber(held), cost)
        redis.call('HINCRBY', KEYS[2], lease, -from_lease)
        redis.call('HINCRBY', KEYS[1], 'held', -from_lease)
      else
        code = 3
      end
      available = redis.call('HINCRBY', KEYS[1], 'available', from_lease - cost)
    elseif held then
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
    out[#out + 1] = code
    out[#out + 1] = available
  end
end
-- Last, the account's epoch (load.lua): whose rebuild these debits were applied to.
out[#out + 1] = redis.call('HGET', KEYS[1], 'epoch') or ''
return out
