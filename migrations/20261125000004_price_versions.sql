-- Price versions: every distinct price a model ever had, by content hash, and when each
-- became the model's current price. Transactions carry the version they were priced with.
CREATE TABLE IF NOT EXISTS price_versions (
    version     TEXT PRIMARY KEY,
    snapshot    JSONB NOT NULL,
    first_seen  TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS model_price_history (
    provider        TEXT NOT NULL,
    model           TEXT NOT NULL,
    version         TEXT NOT NULL REFERENCES price_versions (version),
    source          TEXT NOT NULL,
    effective_from  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (provider, model, effective_from)
);
