-- Ledger rows Postgres refused (a value it rejects: a NUL character, a timestamp out of
-- range, a JSON text it cannot store...). The ledger writer isolates such a row from its
-- batch, records a sanitised placeholder in billing_transactions when it can (client text
-- replaced, `needs_review`), and keeps the original here for an operator. One row per
-- (tenant, request id): a spool replay that meets the same row again adds nothing.
CREATE TABLE IF NOT EXISTS ledger_dead_letters (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id    UUID NOT NULL,
    -- The request id (NUL characters replaced by U+FFFD, like every text of `row`).
    request_id   TEXT NOT NULL,
    -- The whole transaction row as the ledger serialised it (its spool record).
    row          JSONB NOT NULL,
    -- Postgres's error (truncated) and its SQLSTATE.
    error        TEXT NOT NULL,
    sqlstate     TEXT,
    -- Whether the placeholder reached billing_transactions (false: the debit is recorded
    -- nowhere else, and a balance rebuilt from Postgres does not subtract it).
    placeholder  BOOLEAN NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, request_id)
);

-- A sum clamped to BIGINT: the daily rollup adds token counts a provider reported (the
-- ledger stores up to i64::MAX), and an overflow must not stop it for every tenant.
CREATE OR REPLACE FUNCTION xjp_saturate(n NUMERIC) RETURNS BIGINT
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT LEAST(GREATEST(n, -9223372036854775808), 9223372036854775807)::BIGINT $$;

-- The summary's model key: the ledger stores model names of at most 1024 bytes, but a row
-- written otherwise may hold a longer one, and the summary's primary key (a B-tree) takes
-- no entry over ~2.7 KB. Longer names become a prefix and a hash of the whole name.
CREATE OR REPLACE FUNCTION xjp_summary_model(m TEXT) RETURNS TEXT
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT CASE WHEN octet_length(m) <= 1024 THEN m ELSE left(m, 200) || '…' || left(md5(m), 16) END $$;
