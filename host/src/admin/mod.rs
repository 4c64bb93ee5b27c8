//! Admin and internal endpoints (admin token required): tenants, API keys, money, plugins.

pub mod billing;

use crate::api::error::error_body;
use crate::api::{Body, GatewayError, json_response};
use crate::db::credits::CreditKind;
use crate::db::{keys, tenants};
use crate::gateway::Gateway;
use crate::plugins::ApiFormat;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use uuid::Uuid;

/// Admin request bodies are small.
const ADMIN_BODY_LIMIT: usize = 64 << 10;

/// Checks the admin token in constant time (comparing digests, so length leaks nothing).
pub fn is_admin(gw: &Gateway, headers: &hyper::HeaderMap) -> bool {
    let Some(expected) = gw.admin_token() else { return false };
    let presented = crate::proxy::authenticate::presented_key(headers, None).unwrap_or_default();
    let a = Sha256::digest(presented.as_bytes());
    let b = Sha256::digest(expected.expose().as_bytes());
    bool::from(a.ct_eq(&b))
}

pub(crate) fn error(status: StatusCode, message: &str) -> Response<Body> {
    json_response(status, &error_body(ApiFormat::OpenaiChat, status, message, None))
}

pub(crate) fn db_error(e: sqlx::Error) -> Response<Body> {
    tracing::error!(error = %e, "admin query failed");
    error(StatusCode::SERVICE_UNAVAILABLE, "database unavailable")
}

pub(crate) async fn json_body<T: for<'de> Deserialize<'de>>(req: Request<Incoming>) -> Result<T, Response<Body>> {
    let (parts, body) = req.into_parts();
    let bytes = crate::proxy::accept::read_body(&parts.headers, body, ADMIN_BODY_LIMIT)
        .await
        .map_err(|e| GatewayError::to_response(&e, ApiFormat::OpenaiChat))?;
    let bytes = if bytes.is_empty() { bytes::Bytes::from_static(b"{}") } else { bytes };
    serde_json::from_slice(&bytes).map_err(|e| error(StatusCode::BAD_REQUEST, &format!("invalid JSON body: {e}")))
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
    if gw.admin_token().is_none() {
        return error(StatusCode::FORBIDDEN, "admin API disabled: set XJP_ADMIN_TOKEN");
    }
    if !is_admin(gw, req.headers()) {
        return GatewayError::AdminForbidden.to_response(ApiFormat::OpenaiChat);
    }
    let path = req.uri().path().to_string();
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let method = req.method().clone();
    match (&method, segments.as_slice()) {
        (&Method::GET, ["internal", "plugins"]) => plugins(gw),
        (&Method::POST, ["internal", "billing", "quote"]) => {
            let (parts, body) = req.into_parts();
            match crate::proxy::accept::read_body(&parts.headers, body, 16 << 20).await {
                Ok(bytes) => crate::reports::quote::handle(gw, bytes).await,
                Err(e) => e.to_response(ApiFormat::OpenaiChat),
            }
        }
        (&Method::GET, ["internal", "billing", "transactions"]) => {
            crate::reports::transactions::list(&gw.db, req.uri().query(), crate::reports::transactions::Scope::Admin)
                .await
        }
        (&Method::GET, ["internal", "billing", "summary"]) => {
            crate::reports::summary::handle(&gw.db, req.uri().query(), None).await
        }
        (&Method::GET, ["internal", "billing", "reconciliation"]) => {
            crate::reports::reconciliation::handle(&gw.db, req.uri().query()).await
        }
        (&Method::POST, ["admin", "tenants"]) => create_tenant(gw, req).await,
        (&Method::POST, ["admin", "tenants", id, "keys"]) => match id.parse::<Uuid>() {
            Ok(id) => create_key(gw, id, req).await,
            Err(_) => error(StatusCode::BAD_REQUEST, "tenant id must be a UUID"),
        },
        (&Method::GET, ["admin", "tenants", id, "keys"]) => match id.parse::<Uuid>() {
            Ok(id) => list_keys(gw, id).await,
            Err(_) => error(StatusCode::BAD_REQUEST, "tenant id must be a UUID"),
        },
        (&Method::POST, ["admin", "tenants", id, kind @ ("topups" | "adjustments")]) => match id.parse::<Uuid>() {
            Ok(id) => {
                let kind = if *kind == "topups" { CreditKind::TopUp } else { CreditKind::Adjustment };
                billing::credit(gw, id, kind, req).await
            }
            Err(_) => error(StatusCode::BAD_REQUEST, "tenant id must be a UUID"),
        },
        (&Method::GET, ["admin", "tenants", id, "balance"]) => match id.parse::<Uuid>() {
            Ok(id) => billing::balance(gw, id).await,
            Err(_) => error(StatusCode::BAD_REQUEST, "tenant id must be a UUID"),
        },
        (&Method::GET, ["admin", "tenants", id, "transactions"]) => match id.parse::<Uuid>() {
            Ok(id) => billing::transactions(gw, id, req.uri().query()).await,
            Err(_) => error(StatusCode::BAD_REQUEST, "tenant id must be a UUID"),
        },
        (&Method::POST, ["admin", "keys", id, "revoke"]) => match id.parse::<Uuid>() {
            Ok(id) => revoke_key(gw, id).await,
            Err(_) => error(StatusCode::BAD_REQUEST, "key id must be a UUID"),
        },
        _ => error(StatusCode::NOT_FOUND, &format!("no admin route for {method} {path}")),
    }
}

fn plugins(gw: &Gateway) -> Response<Body> {
    let set = gw.plugins.current();
    json_response(StatusCode::OK, &json!({ "generation": set.generation(), "plugins": gw.plugins.status() }))
}

async fn create_tenant(gw: &Gateway, req: Request<Incoming>) -> Response<Body> {
    let body: NewTenant = match json_body(req).await {
        Ok(b) => b,
        Err(resp) => return resp,
    };
    if body.name.trim().is_empty() {
        return error(StatusCode::BAD_REQUEST, "`name` must not be empty");
    }
    match tenants::create(&gw.db, body.name.trim()).await {
        Ok(t) => json_response(StatusCode::CREATED, &json!(t)),
        Err(e) => db_error(e),
    }
}

async fn create_key(gw: &Gateway, tenant: Uuid, req: Request<Incoming>) -> Response<Body> {
    let body: NewKey = match json_body(req).await {
        Ok(b) => b,
        Err(resp) => return resp,
    };
    match tenants::get(&gw.db, tenant).await {
        Ok(Some(_)) => {}
        Ok(None) => return error(StatusCode::NOT_FOUND, "no such tenant"),
        Err(e) => return db_error(e),
    }
    match keys::create(&gw.db, tenant, body.name.as_deref()).await {
        Ok((row, plaintext)) => {
            let mut v = json!(row);
            v["key"] = json!(plaintext);
            v["note"] = json!("store this key now: it is not shown again");
            json_response(StatusCode::CREATED, &v)
        }
        Err(e) => db_error(e),
    }
}

async fn list_keys(gw: &Gateway, tenant: Uuid) -> Response<Body> {
    match keys::list(&gw.db, tenant).await {
        Ok(rows) => json_response(StatusCode::OK, &json!({ "data": rows })),
        Err(e) => db_error(e),
    }
}

async fn revoke_key(gw: &Gateway, key: Uuid) -> Response<Body> {
    match keys::revoke(&gw.db, key).await {
        Ok(Some(row)) => {
            gw.proxy.forget_keys();
            json_response(StatusCode::OK, &json!(row))
        }
        Ok(None) => error(StatusCode::NOT_FOUND, "no such key"),
        Err(e) => db_error(e),
    }
}
