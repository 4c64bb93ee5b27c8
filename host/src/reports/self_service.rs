//! `/v1/billing/*` for API keys: a tenant reads its own balance, usage and transactions.

use super::money;
use super::transactions::Scope;
use crate::api::respond::{ok, respond};
use crate::api::{ApiResult, Body, GatewayError};
use crate::gateway::Gateway;
use hyper::body::Incoming;
use hyper::{Request, Response};
use serde_json::json;
use uuid::Uuid;

/// Routes `GET /v1/billing/{balance,usage,transactions}`.
pub async fn dispatch(gw: &Gateway, req: &Request<Incoming>) -> Response<Body> {
    respond(route(gw, req).await)
}

async fn route(gw: &Gateway, req: &Request<Incoming>) -> ApiResult {
    let tenant = gw.proxy.authenticate(req.headers(), None).await?.tenant_id;
    match req.uri().path() {
        "/v1/billing/balance" => balance(gw, tenant).await,
        "/v1/billing/usage" => super::summary::handle(&gw.db, req.uri().query(), Some(tenant)).await,
        "/v1/billing/transactions" => super::transactions::list(&gw.db, req.uri().query(), Scope::Tenant(tenant)).await,
        other => Err(GatewayError::NotFound { method: req.method().to_string(), path: other.to_string() }.into()),
    }
}

async fn balance(gw: &Gateway, tenant: Uuid) -> ApiResult {
    let ledger = crate::ledger::lookup::balance(&gw.db, tenant).await?;
    let live = gw.billing.balances.live(tenant).await.ok().filter(|l| l.loaded);
    ok(&json!({
        "tenant_id": tenant,
        "available": live.map(|l| money(l.available_nano)),
        "held": live.map(|l| money(l.held_nano)),
        "credits": money(ledger.credits_nano),
        "debits": money(ledger.debits_nano),
        "balance": money(ledger.balance_nano),
    }))
}
