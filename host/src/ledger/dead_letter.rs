//! Rows Postgres refuses. The writer isolates them (halving the batch until the refused rows
//! are alone), then for each: records a placeholder in `billing_transactions` — the money
//! (tenant, key, request id, cost, tokens, status) with `needs_review` and the client's text
//! replaced — so the debit stays recorded, and keeps the original row in
//! `ledger_dead_letters` for an operator. Neither insert can fail for what the row holds:
//! the placeholder carries no client text and a timestamp in range; the dead letter's texts
//! have their NUL characters (the one character Postgres text and jsonb refuse in a UTF-8
//! database) replaced, and the row is already bounded in size (`ledger::bounds`).

use super::bounds::truncate;
use super::refusal::sqlstate;
use super::row::TransactionRow;
use serde_json::Value;
use sqlx::PgPool;

/// What the placeholder says instead of the client's text.
pub const PLACEHOLDER_TEXT: &str = "(refused by postgres: see ledger_dead_letters)";
/// The `error_class` of a placeholder.
pub const PLACEHOLDER_CLASS: &str = "ledger_dead_letter";
/// Postgres's error text is kept up to this many bytes.
pub const MAX_ERROR_BYTES: usize = 2048;

/// The latest timestamp a placeholder keeps (9999-12-31T23:59:59.999999Z); beyond it, or
/// before 1970, the placeholder is dated now.
const MAX_CREATED_US: i64 = 253_402_300_799_999_999;

/// `s` with every NUL character replaced by U+FFFD.
pub fn sanitize(s: &str) -> std::borrow::Cow<'_, str> {
    if s.contains('\0') { s.replace('\0', "\u{FFFD}").into() } else { s.into() }
}

/// A name the ledger itself set (provider, format, status, price version), kept when it is
/// short printable text.
fn safe_name(s: &str) -> String {
    if s.len() <= 256 && !s.chars().any(char::is_control) { s.to_string() } else { PLACEHOLDER_TEXT.to_string() }
}

/// The row's placeholder in `billing_transactions`: its money and identity, with
/// `needs_review`; the client's text (models, ids it sent, error text, fees) replaced.
pub fn placeholder(row: &TransactionRow, error: &sqlx::Error) -> TransactionRow {
    let now_us = chrono::Utc::now().timestamp_micros();
    let code = sqlstate(error).unwrap_or_else(|| "none".into());
    TransactionRow {
        request_id: sanitize(&row.request_id).into_owned(),
        client_request_id: None,
        tenant_id: row.tenant_id,
        api_key_id: row.api_key_id,
        provider: row.provider.as_deref().map(safe_name),
        model_requested: PLACEHOLDER_TEXT.to_string(),
        model_served: None,
        upstream_model: row.upstream_model.as_deref().map(safe_name),
        api_format: safe_name(&row.api_format),
        stream: row.stream,
        status: safe_name(&row.status),
        error_class: Some(PLACEHOLDER_CLASS.to_string()),
        error_message: Some(format!(
            "postgres refused the row (SQLSTATE {code}); the original is in ledger_dead_letters"
        )),
        http_status: row.http_status,
        input_uncached_tokens: row.input_uncached_tokens,
        cache_read_tokens: row.cache_read_tokens,
        cache_write_5m_tokens: row.cache_write_5m_tokens,
        cache_write_1h_tokens: row.cache_write_1h_tokens,
        output_tokens: row.output_tokens,
        reasoning_tokens: row.reasoning_tokens,
        fees: Value::Object(Default::default()),
        cost_nano: row.cost_nano,
        provider_cost_nano: row.provider_cost_nano,
        price_version: row.price_version.as_deref().map(safe_name),
        price_snapshot: None,
        estimated: row.estimated,
        needs_review: true,
        latency_ms: row.latency_ms,
        created_at_us: if (0..=MAX_CREATED_US).contains(&row.created_at_us) { row.created_at_us } else { now_us },
    }
}

/// Replaces NUL characters in every string of `v`, keys included.
fn sanitize_json(v: &mut Value) {
    match v {
        Value::String(s) => {
            if let std::borrow::Cow::Owned(clean) = sanitize(s) {
                *s = clean;
            }
        }
        Value::Array(a) => a.iter_mut().for_each(sanitize_json),
        Value::Object(o) => {
            if o.keys().any(|k| k.contains('\0')) {
                *o = std::mem::take(o).into_iter().map(|(k, v)| (sanitize(&k).into_owned(), v)).collect();
            }
            o.values_mut().for_each(sanitize_json);
        }
        _ => {}
    }
}

/// The row as the dead-letter table stores it: its serialised form, sanitised.
pub fn row_json(row: &TransactionRow) -> Value {
    let mut v = serde_json::to_value(row).unwrap_or_else(|e| Value::String(format!("unserialisable row: {e}")));
    sanitize_json(&mut v);
    v
}

/// Postgres's error as the dead-letter table stores it: sanitised, at most
/// [`MAX_ERROR_BYTES`].
pub fn error_text(error: &sqlx::Error) -> String {
    let mut text = sanitize(&error.to_string()).into_owned();
    truncate(&mut text, MAX_ERROR_BYTES);
    text
}

/// Stores a refused row; returns whether it is new (a spool replay meets the same row again).
pub async fn store(
    db: &PgPool,
    row: &TransactionRow,
    error: &sqlx::Error,
    placeholder: bool,
) -> Result<bool, sqlx::Error> {
    let stored = sqlx::query(
        "INSERT INTO ledger_dead_letters (tenant_id, request_id, row, error, sqlstate, placeholder) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (tenant_id, request_id) DO NOTHING",
    )
    .bind(row.tenant_id)
    .bind(sanitize(&row.request_id))
    .bind(row_json(row))
    .bind(error_text(error))
    .bind(sqlstate(error).map(|c| sanitize(&c).into_owned()))
    .bind(placeholder)
    .execute(db)
    .await?;
    Ok(stored.rows_affected() == 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn nul_characters_are_replaced_everywhere() {
        let mut v = json!({"a\u{0}b": ["x\u{0}", {"k": "\u{0}"}], "n": 1});
        sanitize_json(&mut v);
        assert_eq!(v, json!({"a\u{FFFD}b": ["x\u{FFFD}", {"k": "\u{FFFD}"}], "n": 1}));
        assert!(!v.to_string().contains("\\u0000"));
        let long = sqlx::Error::Protocol("\0".repeat(10_000));
        let text = error_text(&long);
        assert!(text.len() <= MAX_ERROR_BYTES && !text.contains('\0'));
    }
}
