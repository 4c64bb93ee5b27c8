//! Transaction listings: a filtered page in keyset order (created_at DESC, seq DESC, which
//! is unique) after an opaque cursor, and a tenant's latest rows. Rows recorded while a
//! client pages never make a row appear twice or disappear.

use super::and;
use chrono::{DateTime, Datelike, Utc};
use serde_json::Value;
use sqlx::{PgPool, Postgres, QueryBuilder};
use uuid::Uuid;

/// Position after the last row of a page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub created_us: i64,
    pub seq: i64,
}

impl Cursor {
    /// Opaque text form.
    pub fn encode(self) -> String {
        hex::encode(format!("{}.{}", self.created_us, self.seq))
    }

    /// Parses the opaque form (`None` for anything `encode` did not make). The position
    /// must be a time of the years 1 to 9999 (as `start` and `end` are): a row's time
    /// always is, and Postgres refuses a time out of its range instead of matching nothing.
    pub fn decode(text: &str) -> Option<Cursor> {
        let raw = String::from_utf8(hex::decode(text).ok()?).ok()?;
        let (us, seq) = raw.split_once('.')?;
        let created_us = us.parse().ok()?;
        DateTime::<Utc>::from_timestamp_micros(created_us).filter(|t| (1..=9999).contains(&t.year()))?;
        Some(Cursor { created_us, seq: seq.parse().ok()? })
    }
}

/// Which rows a page lists; every field narrows it.
#[derive(Debug, Clone, Default)]
pub struct TransactionFilter {
    pub tenant: Option<Uuid>,
    pub api_key: Option<Uuid>,
    /// `created_at >= start`
    pub start: Option<DateTime<Utc>>,
    /// `created_at < end`
    pub end: Option<DateTime<Utc>>,
    pub model_requested: Option<String>,
    pub status: Option<String>,
    /// Only the rows after this position.
    pub after: Option<Cursor>,
}

/// Up to a limit of rows, newest first, and where the next page starts (`None` on the last).
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    /// Every column but `rolled_up` and `seq`, as a JSON object.
    pub rows: Vec<Value>,
    pub next: Option<Cursor>,
}

/// One page of at most `limit` rows.
pub async fn page(db: &PgPool, filter: &TransactionFilter, limit: i64) -> Result<Page, sqlx::Error> {
    let mut q: QueryBuilder<Postgres> = QueryBuilder::new(
        "SELECT seq, (extract(epoch from created_at) * 1000000)::BIGINT AS created_us, \
         to_jsonb(t) - 'rolled_up' - 'seq' AS row FROM billing_transactions t WHERE true",
    );
    and(&mut q, " AND tenant_id = ", filter.tenant);
    and(&mut q, " AND api_key_id = ", filter.api_key);
    and(&mut q, " AND created_at >= ", filter.start);
    and(&mut q, " AND created_at < ", filter.end);
    and(&mut q, " AND model_requested = ", filter.model_requested.clone());
    and(&mut q, " AND status = ", filter.status.clone());
    if let Some(c) = filter.after {
        q.push(" AND (created_at, seq) < (timestamptz 'epoch' + ").push_bind(c.created_us);
        q.push(" * interval '1 microsecond', ").push_bind(c.seq).push(")");
    }
    // One row more than asked tells whether there is a next page.
    q.push(" ORDER BY created_at DESC, seq DESC LIMIT ").push_bind(limit + 1);
    let mut rows: Vec<(i64, i64, Value)> = q.build_query_as().fetch_all(db).await?;
    let more = rows.len() as i64 > limit;
    rows.truncate(limit.max(0) as usize);
    let next = if more { rows.last().map(|(seq, us, _)| Cursor { created_us: *us, seq: *seq }) } else { None };
    Ok(Page { rows: rows.into_iter().map(|(_, _, row)| row).collect(), next })
}

/// A tenant's latest `limit` rows, newest first, every column but `rolled_up`.
pub async fn latest(db: &PgPool, tenant: Uuid, limit: i64) -> Result<Vec<Value>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT to_jsonb(t) - 'rolled_up' FROM billing_transactions t WHERE tenant_id = $1 ORDER BY created_at DESC, seq DESC LIMIT $2",
    )
    .bind(tenant)
    .bind(limit)
    .fetch_all(db)
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let c = Cursor { created_us: 1_764_000_000_000_000, seq: 42 };
        assert_eq!(Cursor::decode(&c.encode()), Some(c));
        assert!(Cursor::decode("zz").is_none());
        assert!(Cursor::decode(&hex::encode("12")).is_none());
        assert!(Cursor::decode(&hex::encode(format!("{}.1", i64::MAX))).is_none());
        assert!(Cursor::decode(&hex::encode(format!("{}.1", i64::MIN))).is_none());
        assert!(Cursor::decode(&hex::encode("-62135596800000000.1")).is_some(), "0001-01-01");
    }
}
