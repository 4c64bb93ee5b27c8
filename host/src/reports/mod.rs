//! Billing read endpoints: quote, transactions, summary, reconciliation, and the tenant
//! self-service views. Admin routes live under `/internal/billing/`; a tenant's own key
//! reads `/v1/billing/*` and never sees another tenant.

pub mod params;
pub mod quote;
pub mod reconciliation;
pub mod self_service;
pub mod summary;
pub mod transactions;

use crate::api::Body;
use hyper::Response;
use serde_json::json;

/// The OpenAPI document of the billing and admin endpoints.
pub const OPENAPI: &str = include_str!("openapi.json");

/// `GET /internal/openapi.json`
pub fn openapi() -> Response<Body> {
    let mut resp = Response::new(crate::api::full(OPENAPI));
    resp.headers_mut().insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static("application/json"));
    resp
}

/// Money as both a decimal string and integer nano-USD.
pub fn money(nano: i64) -> serde_json::Value {
    json!({ "usd": xjp_money::nano_to_usd(nano), "nano": nano })
}
