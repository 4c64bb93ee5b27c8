-- Money: credits (top-ups and adjustments), the billing transaction ledger, daily rollups.
-- Amounts are BIGINT nano-USD (1e-9 USD).

CREATE TABLE IF NOT EXISTS credits (
    tenant_id    UUID NOT NULL REFERENCES tenants (id),
    -- Client-supplied idempotency id: the same top-up sent twice is stored once.
    id           TEXT NOT NULL,
    kind         TEXT NOT NULL CHECK (kind IN ('topup', 'adjustment')),
    amount_nano  BIGINT NOT NULL,
    note         TEXT,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    CHECK (kind <> 'topup' OR amount_nano > 0)
);

-- Global idempotency of transactions across time partitions: one row per (tenant, request id).
CREATE TABLE IF NOT EXISTS billing_request_ids (
    tenant_id   UUID NOT NULL,
    request_id  TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (tenant_id, request_id)
);

CREATE TABLE IF NOT EXISTS billing_transactions (
    seq                    BIGINT GENERATED ALWAYS AS IDENTITY,
    request_id             TEXT NOT NULL,
    -- The Idempotency-Key / X-Request-Id the client sent, when it sent one.
    client_request_id      TEXT,
    tenant_id              UUID NOT NULL,
    api_key_id             UUID NOT NULL,
    provider               TEXT,
    model_requested        TEXT NOT NULL,
    model_served           TEXT,
    upstream_model         TEXT,
    api_format             TEXT NOT NULL,
    stream                 BOOLEAN NOT NULL DEFAULT false,
    status                 TEXT NOT NULL,
    error_class            TEXT,
    error_message          TEXT,
    http_status            INT,
    input_uncached_tokens  BIGINT NOT NULL DEFAULT 0,
    cache_read_tokens      BIGINT NOT NULL DEFAULT 0,
    cache_write_5m_tokens  BIGINT NOT NULL DEFAULT 0,
    cache_write_1h_tokens  BIGINT NOT NULL DEFAULT 0,
    output_tokens          BIGINT NOT NULL DEFAULT 0,
    reasoning_tokens       BIGINT NOT NULL DEFAULT 0,
    fees                   JSONB NOT NULL DEFAULT '{}'::jsonb,
    cost_nano              BIGINT NOT NULL DEFAULT 0,
    provider_cost_nano     BIGINT,
    price_version          TEXT,
    price_snapshot         JSONB,
    estimated              BOOLEAN NOT NULL DEFAULT false,
    needs_review           BOOLEAN NOT NULL DEFAULT false,
    latency_ms             INT,
    rolled_up              BOOLEAN NOT NULL DEFAULT false,
    created_at             TIMESTAMPTZ NOT NULL,
    recorded_at            TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (created_at, seq)
) PARTITION BY RANGE (created_at);

CREATE TABLE IF NOT EXISTS billing_transactions_default PARTITION OF billing_transactions DEFAULT;

CREATE INDEX IF NOT EXISTS billing_tx_tenant_time ON billing_transactions (tenant_id, created_at DESC, seq DESC);
CREATE INDEX IF NOT EXISTS billing_tx_key_time ON billing_transactions (api_key_id, created_at DESC, seq DESC);
CREATE INDEX IF NOT EXISTS billing_tx_request ON billing_transactions (tenant_id, request_id);
CREATE INDEX IF NOT EXISTS billing_tx_not_rolled ON billing_transactions (created_at) WHERE NOT rolled_up;

-- Rollups per tenant / day / model / key, maintained by the rollup job (each transaction
-- is counted exactly once: the job flips `rolled_up` in the same statement).
CREATE TABLE IF NOT EXISTS tenant_billing_summary (
    tenant_id              UUID NOT NULL,
    day                    DATE NOT NULL,
    model                  TEXT NOT NULL,
    api_key_id             UUID NOT NULL,
    requests               BIGINT NOT NULL DEFAULT 0,
    errors                 BIGINT NOT NULL DEFAULT 0,
    input_uncached_tokens  BIGINT NOT NULL DEFAULT 0,
    cache_read_tokens      BIGINT NOT NULL DEFAULT 0,
    cache_write_5m_tokens  BIGINT NOT NULL DEFAULT 0,
    cache_write_1h_tokens  BIGINT NOT NULL DEFAULT 0,
    output_tokens          BIGINT NOT NULL DEFAULT 0,
    reasoning_tokens       BIGINT NOT NULL DEFAULT 0,
    cost_nano              BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, day, model, api_key_id)
);

-- Monthly partitions are created ahead by the gateway (ledger::partitions); this helper does it.
CREATE OR REPLACE FUNCTION xjp_ensure_month_partition(month_start DATE) RETURNS void AS $$
DECLARE
    name TEXT := 'billing_transactions_' || to_char(month_start, 'YYYY_MM');
BEGIN
    IF to_regclass(name) IS NULL THEN
        BEGIN
            EXECUTE format(
                'CREATE TABLE %I PARTITION OF billing_transactions FOR VALUES FROM (%L) TO (%L)',
                name, month_start, (month_start + INTERVAL '1 month')::date);
        EXCEPTION WHEN duplicate_table THEN NULL;
        END;
    END IF;
END;
$$ LANGUAGE plpgsql;
