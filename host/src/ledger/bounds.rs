//! Bounds on every variable-length field of a [`TransactionRow`], applied before a row is
//! spooled, so a row always fits a spool frame ([`MAX_FRAME`](super::spool::MAX_FRAME),
//! 16 MiB) whatever a client or a provider sent — the edge validates model names and
//! request ids too, but the ledger does not rely on it.
//!
//! | field | bound | when longer |
//! |---|---|---|
//! | `request_id`, `client_request_id` | [`MAX_ID_BYTES`] (256) | prefix + `…` + 16 hex digits of its SHA-256 |
//! | `provider`, `model_requested`, `model_served`, `upstream_model`, `api_format`, `status`, `error_class`, `price_version` | [`MAX_NAME_BYTES`] (1024) | the same |
//! | `error_message` | [`MAX_MESSAGE_BYTES`] (8 KiB) | prefix + `… (truncated from N bytes)` |
//! | `fees` | [`MAX_FEES_BYTES`] (16 KiB serialised), [`MAX_JSON_DEPTH`] (32) | `{}` and `needs_review` |
//! | `price_snapshot` | [`MAX_SNAPSHOT_BYTES`] (64 KiB serialised), [`MAX_JSON_DEPTH`] | `null` and `needs_review` |
//!
//! Cuts fall on character boundaries. Ids and names keep a hash of the whole value, so two
//! different long values stay different, and the same value is always bounded the same way
//! (a confirmation, a spool replay and a lookup agree on a bounded request id). Bounding is
//! idempotent. Bounds say nothing about content: a NUL character passes, and Postgres's
//! refusal of it is the dead-letter path's business (`ledger::dead_letter`).

use super::row::TransactionRow;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::borrow::Cow;

/// Request ids (client-chosen ones are at most 128 printable ASCII bytes at the edge).
pub const MAX_ID_BYTES: usize = 256;
/// Model, provider and other names (the edge allows model names of 256 bytes).
pub const MAX_NAME_BYTES: usize = 1024;
/// An error message (an upstream error body can be megabytes).
pub const MAX_MESSAGE_BYTES: usize = 8 * 1024;
/// `fees`, serialised.
pub const MAX_FEES_BYTES: usize = 16 * 1024;
/// `price_snapshot`, serialised.
pub const MAX_SNAPSHOT_BYTES: usize = 64 * 1024;
/// Nesting of `fees` and `price_snapshot` (serde_json reads at most 128 levels back).
pub const MAX_JSON_DEPTH: usize = 32;

/// The most a bounded row takes serialised: JSON escapes a text byte into at most 6 bytes
/// (`\u001f`), the JSON fields are bounded as serialised, plus field names and numbers.
pub const MAX_ROW_BYTES: usize =
    6 * (2 * MAX_ID_BYTES + 8 * MAX_NAME_BYTES + MAX_MESSAGE_BYTES) + MAX_FEES_BYTES + MAX_SNAPSHOT_BYTES + 4096;

const _: () = assert!(MAX_ROW_BYTES <= super::spool::MAX_FRAME as usize);

/// `row` with every variable-length field within its bound.
pub fn bound_row(mut row: TransactionRow) -> TransactionRow {
    fn name(s: &mut String, max: usize) {
        if let Cow::Owned(short) = shorten(s, max) {
            *s = short;
        }
    }
    fn opt_name(s: &mut Option<String>, max: usize) {
        if let Some(s) = s {
            name(s, max);
        }
    }
    name(&mut row.request_id, MAX_ID_BYTES);
    opt_name(&mut row.client_request_id, MAX_ID_BYTES);
    for s in [&mut row.model_requested, &mut row.api_format, &mut row.status] {
        name(s, MAX_NAME_BYTES);
    }
    for s in [
        &mut row.provider,
        &mut row.model_served,
        &mut row.upstream_model,
        &mut row.error_class,
        &mut row.price_version,
    ] {
        opt_name(s, MAX_NAME_BYTES);
    }
    if let Some(m) = &mut row.error_message {
        truncate(m, MAX_MESSAGE_BYTES);
    }
    if !json_fits(&row.fees, MAX_FEES_BYTES) {
        row.fees = Value::Object(Default::default());
        row.needs_review = true;
    }
    if row.price_snapshot.as_ref().is_some_and(|v| !json_fits(v, MAX_SNAPSHOT_BYTES)) {
        row.price_snapshot = None;
        row.needs_review = true;
    }
    row
}

/// A request id as the ledger stores it (what [`bound_row`] makes of it).
pub fn bound_id(id: &str) -> Cow<'_, str> {
    shorten(id, MAX_ID_BYTES)
}

/// `s` itself when it has at most `max` bytes, else its longest prefix that leaves room for
/// `…` and 16 hex digits of the SHA-256 of the whole of `s`.
pub fn shorten(s: &str, max: usize) -> Cow<'_, str> {
    if s.len() <= max {
        return Cow::Borrowed(s);
    }
    let tag = format!("…{}", &hex::encode(Sha256::digest(s.as_bytes()))[..16]);
    let prefix = &s[..s.floor_char_boundary(max.saturating_sub(tag.len()))];
    Cow::Owned(format!("{prefix}{tag}"))
}

/// Cuts `s` to at most `max` bytes, saying how long it was.
pub fn truncate(s: &mut String, max: usize) {
    if s.len() <= max {
        return;
    }
    let note = format!("… (truncated from {} bytes)", s.len());
    let cut = s.floor_char_boundary(max.saturating_sub(note.len()));
    s.truncate(cut);
    s.push_str(&note);
}

/// Whether `v` nests at most [`MAX_JSON_DEPTH`] deep and serialises to at most `max` bytes.
/// Iterative, and stops counting at `max`: a hostile value costs no stack and no copy.
pub fn json_fits(v: &Value, max: usize) -> bool {
    let mut stack = vec![(v, 1usize)];
    while let Some((v, depth)) = stack.pop() {
        let children: Box<dyn Iterator<Item = &Value>> = match v {
            Value::Array(a) => Box::new(a.iter()),
            Value::Object(o) => Box::new(o.values()),
            _ => continue,
        };
        if depth > MAX_JSON_DEPTH {
            return false;
        }
        stack.extend(children.map(|c| (c, depth + 1)));
    }
    struct Counter {
        left: usize,
    }
    impl std::io::Write for Counter {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.left = self.left.checked_sub(buf.len()).ok_or(std::io::ErrorKind::FileTooLarge)?;
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    serde_json::to_writer(Counter { left: max }, v).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn big(c: char, bytes: usize) -> String {
        std::iter::repeat_n(c, bytes / c.len_utf8()).collect()
    }

    /// A row whose every text field is 3 MB of the worst characters for JSON escaping.
    fn huge_row() -> TransactionRow {
        let s = || big('\u{1}', 3 << 20);
        let deep = (0..200).fold(json!(1), |v, _| json!([v]));
        TransactionRow {
            request_id: s(),
            client_request_id: Some(s()),
            tenant_id: uuid::Uuid::nil(),
            api_key_id: uuid::Uuid::nil(),
            provider: Some(s()),
            model_requested: big('é', 3 << 20),
            model_served: Some(s()),
            upstream_model: Some(s()),
            api_format: s(),
            stream: false,
            status: s(),
            error_class: Some(s()),
            error_message: Some(s()),
            http_status: Some(200),
            input_uncached_tokens: i64::MAX,
            cache_read_tokens: i64::MIN,
            cache_write_5m_tokens: 0,
            cache_write_1h_tokens: 0,
            output_tokens: 0,
            reasoning_tokens: 0,
            fees: json!({ s(): u64::MAX }),
            cost_nano: 0,
            provider_cost_nano: Some(i64::MIN),
            price_version: Some(s()),
            price_snapshot: Some(deep),
            estimated: false,
            needs_review: false,
            latency_ms: Some(i32::MIN),
            created_at_us: i64::MIN,
        }
    }

    #[test]
    fn a_row_of_3_mb_strings_fits_a_frame() {
        let row = bound_row(huge_row());
        let bytes = serde_json::to_vec(&row).unwrap().len();
        assert!(bytes <= MAX_ROW_BYTES, "{bytes} > {MAX_ROW_BYTES}");
        assert!(row.request_id.len() <= MAX_ID_BYTES && row.model_requested.len() <= MAX_NAME_BYTES);
        assert!(row.error_message.as_ref().unwrap().ends_with(&format!("(truncated from {} bytes)", 3 << 20)));
        assert_eq!((row.fees.clone(), row.price_snapshot.clone(), row.needs_review), (json!({}), None, true));
        // It reads back from JSON (nesting within serde_json's limit) and bounds to itself.
        let back: TransactionRow = serde_json::from_slice(&serde_json::to_vec(&row).unwrap()).unwrap();
        assert_eq!(bound_row(back.clone()), back);
        assert_eq!(back, row);
    }

    #[test]
    fn shortening_keeps_long_values_apart_on_char_boundaries() {
        let a = big('é', 3000);
        let b = format!("{}x", &a[..a.len() - 2]);
        let (sa, sb) = (shorten(&a, MAX_NAME_BYTES), shorten(&b, MAX_NAME_BYTES));
        assert_ne!(sa, sb);
        assert!(sa.len() <= MAX_NAME_BYTES && sb.len() <= MAX_NAME_BYTES);
        assert_eq!(shorten(&sa, MAX_NAME_BYTES), sa, "idempotent");
        assert_eq!(shorten("gpt-4o-mini", MAX_NAME_BYTES), "gpt-4o-mini");
        assert_eq!(bound_id(&a), shorten(&a, MAX_ID_BYTES));
        let mut m = big('€', 100);
        truncate(&mut m, 40);
        assert!(m.len() <= 40 && m.ends_with("(truncated from 99 bytes)"), "{m}");
    }

    #[test]
    fn json_bounds() {
        assert!(json_fits(&json!({"web_search": 2}), 64));
        assert!(!json_fits(&json!({"web_search": "x".repeat(100)}), 64));
        let nest = |n| (0..n).fold(json!(0), |v, _| json!({ "a": v }));
        assert!(json_fits(&nest(MAX_JSON_DEPTH), 1 << 20));
        assert!(!json_fits(&nest(MAX_JSON_DEPTH + 1), 1 << 20));
    }
}
