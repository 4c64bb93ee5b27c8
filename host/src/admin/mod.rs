//! Admin and internal endpoints (admin token required): tenants, API keys, money, plugins.

pub mod billing;

use crate::api::respond::{ok, reply, respond};
use crate::api::{ApiError, ApiResult, Body, GatewayError};
use crate::db::credits::CreditKind;
use crate::db::{keys, tenants};
use crate::gateway::Gateway;
use crate::reports;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use uuid::Uuid;

/// Admin request bodies are small.
pub const ADMIN_BODY_LIMIT: usize = 64 << 10;
/// `/internal/billing/quote` takes a whole exchange (a request and its response).
pub const QUOTE_BODY_LIMIT: usize = 16 << 20;

/// The request body, within `limit` bytes and the server's body-read timeout (as the
/// proxy's: 413 / 408).
async fn read_body(gw: &Gateway, req: Request<Incoming>, limit: usize) -> Result<bytes::Bytes, ApiError> {
    let secs = gw.settings.load().config.server.body_read_timeout_secs;
    let (parts, body) = req.into_parts();
    Ok(crate::proxy::accept::read_body_within(&parts.headers, body, limit, secs).await?)
}

/// Checks the admin token in constant time (comparing digests, so length leaks nothing).
pub fn is_admin(gw: &Gateway, headers: &hyper::HeaderMap) -> bool {
    let Some(expected) = gw.admin_token() else { return false };
    let presented = crate::proxy::authenticate::presented_key(headers, None).unwrap_or_default();
    let a = Sha256::digest(presented.as_bytes());
    let b = Sha256::digest(expected.expose().as_bytes());
    bool::from(a.ct_eq(&b))
}

/// The JSON request body (empty means `{}`). Its strings go to Postgres text columns,
/// which cannot hold a NUL character: a body with one is refused here (400), not by the
/// database (which would read as an outage, 503).
pub(crate) async fn json_body<T: for<'de> Deserialize<'de>>(
    gw: &Gateway,
    req: Request<Incoming>,
) -> Result<T, ApiError> {
    let bytes = read_body(gw, req, ADMIN_BODY_LIMIT).await?;
    let bytes = if bytes.is_empty() { bytes::Bytes::from_static(b"{}") } else { bytes };
    let parsed = serde_json::from_slice(&bytes).map_err(|e| ApiError::BadRequest(format!("invalid JSON body: {e}")))?;
    if serde_json::from_slice(&bytes).is_ok_and(|v| holds_nul(&v)) {
        return Err(ApiError::BadRequest("strings in the body must not contain NUL (\\u0000) characters".into()));
    }
    Ok(parsed)
}

/// Whether a NUL character is in any key or string of `value`.
fn holds_nul(value: &serde_json::Value) -> bool {
    match value {
        serde_json::Value::String(s) => s.contains('\0'),
        serde_json::Value::Array(items) => items.iter().any(holds_nul),
        serde_json::Value::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || holds_nul(v)),
        _ => false,
    }
}

/// A path segment that must be a UUID.
fn uuid(segment: &str, what: &str) -> Result<Uuid, ApiError> {
    segment.parse().map_err(|_| ApiError::BadRequest(format!("{what} id must be a UUID")))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewTenant {
    name: String,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct NewKey {
    #[serde(default)]
    name: Option<String>,
}

/// Routes `/admin/...` and `/internal/...`.
pub async fn dispatch(gw: &Gateway, req: Request<Incoming>) -> Response<Body> {
    respond(route(gw, req).await)
}

async fn route(gw: &Gateway, req: Request<Incoming>) -> ApiResult {
    if gw.admin_token().is_none() {
        return Err(ApiError::Forbidden("admin API disabled: set XJP_ADMIN_TOKEN".into()));
    }
    if !is_admin(gw, req.headers()) {
        return Err(GatewayError::AdminForbidden.into());
    }
    let path = req.uri().path().to_string();
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let method = req.method().clone();
    let query = req.uri().query().map(str::to_string);
    let query = query.as_deref();
    match (&method, segments.as_slice()) {
        (&Method::GET, ["internal", "plugins"]) => plugins(gw),
        (&Method::POST, ["internal", "billing", "quote"]) => {
            reports::quote::handle(gw, read_body(gw, req, QUOTE_BODY_LIMIT).await?).await
        }
        (&Method::GET, ["internal", "billing", "transactions"]) => {
            reports::transactions::list(&gw.db, query, reports::transactions::Scope::Admin).await
        }
        (&Method::GET, ["internal", "billing", "summary"]) => reports::summary::handle(&gw.db, query, None).await,
        (&Method::GET, ["internal", "billing", "reconciliation"]) => {
            reports::reconciliation::handle(&gw.db, query).await
        }
        (&Method::POST, ["admin", "tenants"]) => create_tenant(gw, req).await,
        (&Method::POST, ["admin", "tenants", id, "keys"]) => create_key(gw, uuid(id, "tenant")?, req).await,
        (&Method::GET, ["admin", "tenants", id, "keys"]) => list_keys(gw, uuid(id, "tenant")?).await,
        (&Method::POST, ["admin", "tenants", id, kind @ ("topups" | "adjustments")]) => {
            let kind = if *kind == "topups" { CreditKind::TopUp } else { CreditKind::Adjustment };
            billing::credit(gw, uuid(id, "tenant")?, kind, req).await
        }
        (&Method::GET, ["admin", "tenants", id, "balance"]) => billing::balance(gw, uuid(id, "tenant")?).await,
        (&Method::GET, ["admin", "tenants", id, "transactions"]) => {
            billing::transactions(gw, uuid(id, "tenant")?, query).await
        }
        (&Method::POST, ["admin", "keys", id, "revoke"]) => revoke_key(gw, uuid(id, "key")?).await,
        _ => Err(ApiError::NotFound(format!("no admin route for {method} {path}"))),
    }
}

fn plugins(gw: &Gateway) -> ApiResult {
    let set = gw.plugins.current();
    ok(&json!({ "generation": set.generation(), "plugins": gw.plugins.status() }))
}

async fn create_tenant(gw: &Gateway, req: Request<Incoming>) -> ApiResult {
    let body: NewTenant = json_body(gw, req).await?;
    if body.name.trim().is_empty() {
        return Err(ApiError::BadRequest("`name` must not be empty".into()));
    }
    let tenant = tenants::create(&gw.db, body.name.trim()).await?;
    reply(StatusCode::CREATED, &json!(tenant))
}

/// 404 unless the tenant exists.
pub(crate) async fn known_tenant(gw: &Gateway, tenant: Uuid) -> Result<(), ApiError> {
    match tenants::get(&gw.db, tenant).await? {
        Some(_) => Ok(()),
        None => Err(ApiError::NotFound("no such tenant".into())),
    }
}

async fn create_key(gw: &Gateway, tenant: Uuid, req: Request<Incoming>) -> ApiResult {
    let body: NewKey = json_body(gw, req).await?;
    known_tenant(gw, tenant).await?;
    let (row, plaintext) = keys::create(&gw.db, tenant, body.name.as_deref()).await?;
    let mut v = json!(row);
    v["key"] = json!(plaintext);
    v["note"] = json!("store this key now: it is not shown again");
    reply(StatusCode::CREATED, &v)
}

async fn list_keys(gw: &Gateway, tenant: Uuid) -> ApiResult {
    ok(&json!({ "data": keys::list(&gw.db, tenant).await? }))
}

async fn revoke_key(gw: &Gateway, key: Uuid) -> ApiResult {
    let row = keys::revoke(&gw.db, key).await?.ok_or_else(|| ApiError::NotFound("no such key".into()))?;
    gw.proxy.forget_key(key).await;
    ok(&json!(row))
}
