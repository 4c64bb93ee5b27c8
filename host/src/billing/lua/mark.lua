-- Prelude of the scripts that mark an account for a rebuild from Postgres (prepended:
-- lease_drop.lua, left_behind.lua, recount.lua, resync.lua; see `balance.rs`).
-- Marks `account`: no hold is taken or settled until a load; the generation tells a load
-- already under way (its snapshot may predate the mark) to start again (load.lua); whose
-- rebuild it was no longer holds (recount.lua), the next load says anew.
local function mark_for_rebuild(account)
  redis.call('HSET', account, 'loaded', '0')
  redis.call('HDEL', account, 'epoch', 'epoch-snapshot')
  redis.call('HINCRBY', account, 'gen', 1)
end
