-- Settle a batch of one tenant's requests: turn each one's hold into a debit of its cost
-- and release the rest, once per request. (mark.lua is prepended: `SETTLE_LUA`.)
-- KEYS[1] account hash, KEYS[2] holds hash, KEYS[3] hold expiry zset (as reserve.lua);
-- KEYS[3 + i] request i's state key.
-- Per request i, from ARGV[5 * (i - 1) + 1]: its id, its cost (nano-USD, >= 0), its outcome
-- label ('settled', 'released', or 'cancelled': the hold goes back and no state is kept, so
-- the id stays usable; '+' before it: sent again after a try whose answer was lost), how long
-- its state is kept (s), and the lease it was held from ('' for its own hold): a leased
-- request's cost comes out of the lease's hold (what the lease lacks, out of `available`); the
-- rest of the lease stays held for its gateway. The requests of one lease are debited together
-- (three commands per lease, not per request): taking each cost in turn from what the lease
-- holds takes min(held, sum of costs) in all, as one step does.
-- A request's state is `label:cost:epoch`, the epoch its debit was applied under. A request
-- sent again and found settled was applied by the lost try: when the account was rebuilt
-- since (the epoch differs), that rebuild may have missed the debit (its row was not in
-- Postgres, and the gateway did not know to count it as unrecorded), so the account is marked
-- for another rebuild, which will; the call's later requests then wait for it (-2). A state
-- without an epoch (`label:cost`: resync, left_behind, older versions) counts as applied under
-- another epoch.
-- Returns {code, available} per request, flattened: 1 settled now, 3 settled now but the lease
-- was gone (debited from `available`), -2 account not loaded (rebuild, then retry), and for
-- a request already settled (nothing debited) 2, plus 2 when it was sent again and its lease
-- is gone, plus 4 when it was sent again and the account was rebuilt since (marked now): 2, 4,
-- 6 or 8. Then the epoch the call's debits were applied under ('' for none).
-- (Amounts are negated as `0 - x`: `-x` is `-0` for x = 0, which Redis refuses as an integer.)
local out = {}
local loaded = redis.call('HGET', KEYS[1], 'loaded') == '1'
local epoch = redis.call('HGET', KEYS[1], 'epoch') or ''
-- Per lease: the sum of its requests' costs and the positions of their answers.
local leases, order = {}, {}
for i = 1, #KEYS - 3 do
  local id, cost_text, label, ttl = ARGV[5 * i - 4], ARGV[5 * i - 3], ARGV[5 * i - 2], ARGV[5 * i - 1]
  local lease = ARGV[5 * i]
  local cost = tonumber(cost_text)
  local again = string.sub(label, 1, 1) == '+'
  if again then
    label = string.sub(label, 2)
  end
  local state = redis.call('GET', KEYS[3 + i])
  -- A hold the sweeper released ('swept:0') still owes its debit: settle it now.
  if state and string.sub(state, 1, 6) ~= 'swept:' then
    local code = 2
    if again then
      if lease ~= '' and redis.call('HEXISTS', KEYS[2], lease) == 0 then
        code = code + 2
      end
      -- (A try that debited nothing left nothing a rebuild could miss.)
      local was_cost = tonumber(string.match(state, '^[^:]*:([^:]*)') or '1') or 1
      local was_epoch = string.match(state, '^[^:]*:[^:]*:(.*)$')
      if was_cost > 0 and (was_epoch ~= epoch or epoch == '') then
        code = code + 4
        if loaded then
          mark_for_rebuild(KEYS[1])
          loaded = false
        end
      end
    end
    out[2 * i - 1] = code
    out[2 * i] = tonumber(redis.call('HGET', KEYS[1], 'available') or '0')
  elseif not loaded then
    out[2 * i - 1] = -2
    out[2 * i] = 0
  else
    if lease ~= '' then
      local group = leases[lease]
      if not group then
        group = { total = 0, at = {} }
        leases[lease] = group
        order[#order + 1] = lease
      end
      group.total = group.total + cost
      group.at[#group.at + 1] = 2 * i - 1
    else
      local held = redis.call('HGET', KEYS[2], id)
      local available
      if held then
        held = tonumber(held)
        redis.call('HDEL', KEYS[2], id)
        redis.call('ZREM', KEYS[3], id)
        redis.call('HINCRBY', KEYS[1], 'held', 0 - held)
        available = redis.call('HINCRBY', KEYS[1], 'available', held - cost)
      else
        -- The hold expired and was swept (or Redis lost it): debit directly.
        available = redis.call('HINCRBY', KEYS[1], 'available', 0 - cost)
      end
      out[2 * i - 1] = 1
      out[2 * i] = available
    end
    -- Recorded now: the same id again in this call finds it settled.
    if label ~= 'cancelled' then
      redis.call('SET', KEYS[3 + i], label .. ':' .. cost_text .. ':' .. epoch, 'EX', tonumber(ttl))
    end
  end
end
for _, lease in ipairs(order) do
  local group = leases[lease]
  local held = redis.call('HGET', KEYS[2], lease)
  local from_lease, code = 0, 3
  if held then
    from_lease, code = math.min(tonumber(held), group.total), 1
    redis.call('HINCRBY', KEYS[2], lease, 0 - from_lease)
    redis.call('HINCRBY', KEYS[1], 'held', 0 - from_lease)
  end
  -- As text: a sum of many capped costs could reach 1e17, which a Lua number passes as 1e+17.
  local available = redis.call('HINCRBY', KEYS[1], 'available', string.format('%.0f', from_lease - group.total))
  for _, at in ipairs(group.at) do
    out[at] = code
    out[at + 1] = available
  end
end
-- Last, the account's epoch (load.lua): whose rebuild these debits were applied to.
out[#out + 1] = epoch
return out
