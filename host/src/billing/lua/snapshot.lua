-- Prelude of load.lua and recount.lua (prepended: `balance::LOAD_LUA`, `recount::RECOUNT_LUA`).
-- Whether the Postgres snapshot `snapshot` (`pg_current_snapshot()` as text: xmin:xmax:the
-- ids in progress) saw transaction `xid` (decimal) end: below xmin, or below xmax and not in
-- progress. nil when the snapshot cannot be read.
local function snapshot_saw(snapshot, xid)
  local xmin, xmax, running = string.match(snapshot or '', '^(%d+):(%d+):(.*)$')
  if not xmin then
    return nil
  end
  local x = tonumber(xid)
  if x < tonumber(xmin) then
    return true
  end
  return x < tonumber(xmax) and not string.find(',' .. running .. ',', ',' .. xid .. ',', 1, true)
end
