//! A tenant's totals over a time range: overall, by model, by key and by day. Exact: the
//! daily rollups for whole UTC days inside the range, plus the not-yet-rolled-up rows of
//! those days, plus raw rows for the partial days at the edges — read in one statement
//! (one snapshot).

use chrono::{DateTime, Duration, NaiveDate, NaiveTime, TimeZone, Utc};
use sqlx::PgPool;
use uuid::Uuid;

const SUMMARY: &str = r#"
WITH facts AS (
    SELECT day, model, api_key_id, requests, errors, input_uncached_tokens AS iu, cache_read_tokens AS cr,
           cache_write_5m_tokens AS w5, cache_write_1h_tokens AS w1, output_tokens AS o, reasoning_tokens AS r, cost_nano AS c
    FROM tenant_billing_summary
    WHERE tenant_id = $1 AND day >= ($4 AT TIME ZONE 'UTC')::date AND day < ($5 AT TIME ZONE 'UTC')::date
  UNION ALL
    SELECT (created_at AT TIME ZONE 'UTC')::date, model_requested, api_key_id, 1, (status <> 'ok')::int,
           input_uncached_tokens, cache_read_tokens, cache_write_5m_tokens, cache_write_1h_tokens, output_tokens, reasoning_tokens, cost_nano
    FROM billing_transactions
    WHERE tenant_id = $1 AND (
          (NOT rolled_up AND created_at >= $4 AND created_at < $5)
       OR (created_at >= $2 AND created_at < LEAST($4, $3))
       OR (created_at >= GREATEST($5, $2) AND created_at < $3))
)
SELECT GROUPING(day)::int, GROUPING(model)::int, GROUPING(api_key_id)::int, day, model, api_key_id,
       COALESCE(sum(requests), 0)::BIGINT, COALESCE(sum(errors), 0)::BIGINT, COALESCE(sum(iu), 0)::BIGINT, COALESCE(sum(cr), 0)::BIGINT, COALESCE(sum(w5), 0)::BIGINT, COALESCE(sum(w1), 0)::BIGINT,
       COALESCE(sum(o), 0)::BIGINT, COALESCE(sum(r), 0)::BIGINT, COALESCE(sum(c), 0)::BIGINT
FROM facts GROUP BY GROUPING SETS ((), (model), (api_key_id), (day))
-- Over no rows the () set still makes a row, of NULL sums: none then (the tenant's totals are 0).
HAVING count(*) > 0
"#;

/// The statement's row: three GROUPING flags, the three keys, nine sums.
type RawRow =
    (i32, i32, i32, Option<NaiveDate>, Option<String>, Option<Uuid>, i64, i64, i64, i64, i64, i64, i64, i64, i64);

/// Requests, errors (status other than `ok`), tokens per bucket and cost of a group.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    pub requests: i64,
    pub errors: i64,
    pub input_uncached: i64,
    pub cache_read: i64,
    pub cache_write_5m: i64,
    pub cache_write_1h: i64,
    pub output: i64,
    pub reasoning: i64,
    pub cost_nano: i64,
}

/// What a row totals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Group {
    /// Everything in the range.
    All,
    Model(Option<String>),
    ApiKey(Option<Uuid>),
    /// A UTC day.
    Day(Option<NaiveDate>),
}

/// One group's totals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SummaryRow {
    pub group: Group,
    pub totals: Totals,
}

fn midnight_at_or_after(t: DateTime<Utc>) -> DateTime<Utc> {
    let day = midnight_at_or_before(t);
    if day == t { day } else { day + Duration::days(1) }
}

fn midnight_at_or_before(t: DateTime<Utc>) -> DateTime<Utc> {
    Utc.from_utc_datetime(&t.date_naive().and_time(NaiveTime::MIN))
}

fn typed(
    (by_day, by_model, by_key, day, model, key, requests, errors, iu, cr, w5, w1, o, r, c): RawRow,
) -> Option<SummaryRow> {
    let group = match (by_day, by_model, by_key) {
        (1, 1, 1) => Group::All,
        (1, 0, 1) => Group::Model(model),
        (1, 1, 0) => Group::ApiKey(key),
        (0, 1, 1) => Group::Day(day),
        _ => return None,
    };
    let totals = Totals {
        requests,
        errors,
        input_uncached: iu,
        cache_read: cr,
        cache_write_5m: w5,
        cache_write_1h: w1,
        output: o,
        reasoning: r,
        cost_nano: c,
    };
    Some(SummaryRow { group, totals })
}

/// `tenant`'s totals over `[start, end)`: one `Group::All` row (absent when there are no
/// rows), then one row per model, key and day, in no particular order.
pub async fn summary(
    db: &PgPool,
    tenant: Uuid,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> Result<Vec<SummaryRow>, sqlx::Error> {
    let (d0, d1) = (midnight_at_or_after(start), midnight_at_or_before(end));
    // Without a whole day inside the range everything comes from raw rows.
    let (d0, d1) = if d0 < d1 { (d0, d1) } else { (end, end) };
    let rows: Vec<RawRow> =
        sqlx::query_as(SUMMARY).bind(tenant).bind(start).bind(end).bind(d0).bind(d1).fetch_all(db).await?;
    Ok(rows.into_iter().filter_map(typed).collect())
}
