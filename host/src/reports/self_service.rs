//! `/v1/billing/*` for API keys: a tenant reads its own balance, usage and transactions.

use super::money;
use super::transactions::Scope;
use crate::api::{Body, json_response};
use crate::gateway::Gateway;
use crate::plugins::ApiFormat;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use serde_json::json;

/// Routes `GET /v1/billing/{balance,usage,transactions}`.
pub async fn dispatch(gw: &Gateway, req: &Request<Incoming>) -> Response<Body> {
    let caller = match gw.proxy.authenticate(req.headers(), None).await {
        Ok(c) => c,
        Err(e) => return e.to_response(ApiFormat::OpenaiChat),
    };
    let tenant = caller.tenant_id;
    match req.uri().path() {
        "/v1/billing/balance" => {
            let ledger = match crate::ledger::lookup::balance(&gw.db, tenant).await {
                Ok(b) => b,
                Err(e) => return crate::admin::db_error(e),
            };
            let live = gw.billing.balances.live(tenant).await.ok().filter(|l| l.loaded);
            json_response(
                StatusCode::OK,
                &json!({
                    "tenant_id": tenant,
                    "available": live.map(|l| money(l.available_nano)),
                    "held": live.map(|l| money(l.held_nano)),
                    "credits": money(ledger.credits_nano),
                    "debits": money(ledger.debits_nano),
                    "balance": money(ledger.balance_nano),
                }),
            )
        }
        "/v1/billing/usage" => super::summary::handle(&gw.db, req.uri().query(), Some(tenant)).await,
        "/v1/billing/transactions" => super::transactions::list(&gw.db, req.uri().query(), Scope::Tenant(tenant)).await,
        other => json_response(
            StatusCode::NOT_FOUND,
            &json!({ "error": { "message": format!("no route {other}"), "type": "not_found" } }),
        ),
    }
}
