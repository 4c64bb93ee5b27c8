-- Two indexes that every ledger insert maintained and no query needs (issue 13: the
-- ledger's write rate). Each row cost 7 B-tree entries; now 5.
--
-- `billing_tx_request (tenant_id, request_id)` duplicated `billing_request_ids`' primary key.
-- Which ids have a row is answered there, and a row's cost is then read through
-- `billing_tx_tenant_time` with the `created_at` that `billing_request_ids` keeps
-- (`ledger::lookup::recorded_costs`).
DROP INDEX IF EXISTS billing_tx_request;

-- `billing_tx_not_rolled (created_at) WHERE NOT rolled_up` served only the rollup's
-- `ORDER BY created_at`. The order never mattered (every row is counted once, whichever
-- batch takes it): the rollup now takes rows in the order of the partial index
-- `billing_tx_tenant_not_rolled (tenant_id, created_at)`, which holds the same rows.
DROP INDEX IF EXISTS billing_tx_not_rolled;
