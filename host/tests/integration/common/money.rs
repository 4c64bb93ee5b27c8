//! Money assertions shared by the billing tests.

use std::time::{Duration, Instant};
use uuid::Uuid;
use xjp_gateway::gateway::Gateway;
use xjp_gateway::plugins::ApiFormat;

/// The hold the gateway takes for `body` on `model`: the plugin's estimate of the body the
/// provider gets (output limit capped, upstream model), priced with the route.
pub fn hold_for(gw: &Gateway, model: &str, body: &str) -> i64 {
    let settings = gw.settings.load();
    let route = settings.routes.route(model).unwrap();
    let plugins = gw.plugins.current();
    let plugin = plugins.get(&route.provider.plugin).unwrap();
    let format = route.provider.api;
    let mut request = xjp_gateway::api::request::ClientRequest::parse(body.as_bytes()).unwrap();
    let rule = xjp_gateway::api::output_cap::CapRule {
        format,
        openai_field: &route.provider.output_limit_field,
        limits: route.limits,
    };
    request.cap_output(&rule).unwrap();
    if format != ApiFormat::GeminiGenerate {
        request.set_model(&route.upstream_model);
    }
    if format == ApiFormat::OpenaiChat && request.stream() {
        request.ensure_include_usage();
    }
    let upstream = request.into_body(bytes::Bytes::new());
    let usage = plugin.estimate(format, &upstream, route.limits).unwrap();
    plugin.price(&usage, route.price.as_ref().unwrap()).unwrap().total
}

/// Rows, their cost sum, and the rows that were served (status not a refusal).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Books {
    pub rows: i64,
    pub cost_nano: i64,
    pub served: i64,
    pub credits_nano: i64,
}

/// What Postgres says about a tenant.
pub async fn books(db: &sqlx::PgPool, tenant: Uuid) -> Books {
    let (rows, cost_nano, served): (i64, i64, i64) = sqlx::query_as(
        "SELECT count(*), COALESCE(sum(cost_nano), 0)::BIGINT, \
                count(*) FILTER (WHERE status NOT IN ('insufficient_balance','budget_denied','routing_error','unavailable','rejected')) \
         FROM billing_transactions WHERE tenant_id = $1",
    )
    .bind(tenant)
    .fetch_one(db)
    .await
    .unwrap();
    let credits_nano: i64 =
        sqlx::query_scalar("SELECT COALESCE(sum(amount_nano), 0)::BIGINT FROM credits WHERE tenant_id = $1")
            .bind(tenant)
            .fetch_one(db)
            .await
            .unwrap();
    Books { rows, cost_nano, served, credits_nano }
}

/// Waits until the tenant has `rows` transaction rows.
pub async fn wait_rows(db: &sqlx::PgPool, tenant: Uuid, rows: i64, within: Duration) -> Books {
    let start = Instant::now();
    loop {
        let b = books(db, tenant).await;
        if b.rows >= rows {
            return b;
        }
        assert!(start.elapsed() < within, "only {} of {rows} rows after {within:?}", b.rows);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Redis agrees with Postgres: nothing held, available = credits - debits.
pub async fn assert_books_balance(gw: &Gateway, db: &sqlx::PgPool, tenant: Uuid) {
    let start = Instant::now();
    loop {
        let b = books(db, tenant).await;
        let live = gw.billing.balances.live(tenant).await.unwrap();
        if live.held_nano == 0 && live.available_nano == b.credits_nano - b.cost_nano {
            assert!(live.available_nano >= 0, "balance below zero: {live:?}");
            return;
        }
        assert!(start.elapsed() < Duration::from_secs(15), "books do not balance: live {live:?}, postgres {b:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// An OpenAI chat body (the same one gives the same hold). Like a real request, its limits
/// bound what the mock's recorded answer uses (412 prompt tokens, 187 completion tokens):
/// 2 KB of prompt text and `max_tokens` 200.
pub static CHAT: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    let text = "Compare object, block and file storage for a small team. ".repeat(36);
    format!(r#"{{"model":"gpt-4o-mini","max_tokens":200,"messages":[{{"role":"user","content":"{text}"}}]}}"#)
});

/// Kills a child process when dropped (a failing test leaves no gateway behind).
pub struct ChildGuard(pub std::process::Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Its API format.
pub const FORMAT: ApiFormat = ApiFormat::OpenaiChat;

/// What Redis says about one request: its settlement record (`settled:<cost>` or
/// `released:0`), and whether a hold is still open for it.
pub async fn settlement(tenant: Uuid, request_id: &str) -> (Option<String>, bool) {
    let client = redis::Client::open(super::harness::redis_url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let keys = super::harness::keys();
    let state: Option<String> =
        redis::cmd("GET").arg(keys.request(tenant, request_id)).query_async(&mut conn).await.unwrap();
    // `label:cost:epoch` (settle.lua) or `label:cost` (a resync, left-behind rows): the epoch
    // the debit was applied under is left out.
    let state = state.map(|s| s.splitn(3, ':').take(2).collect::<Vec<_>>().join(":"));
    let held: bool =
        redis::cmd("HEXISTS").arg(keys.tenant(tenant).holds).arg(request_id).query_async(&mut conn).await.unwrap();
    (state, held)
}

/// The rows recorded for a client request id: (request id, status, cost).
pub async fn rows_for(db: &sqlx::PgPool, client_request_id: &str) -> Vec<(String, String, i64)> {
    sqlx::query_as(
        "SELECT request_id, status, cost_nano FROM billing_transactions WHERE client_request_id = $1 ORDER BY seq",
    )
    .bind(client_request_id)
    .fetch_all(db)
    .await
    .unwrap()
}
