//! What billing knows about one request: who pays, what was asked, the route and its
//! price, and the hold. The proxy's request context fills it in as the phases run and hands
//! it to [`Billing::finish`](super::Billing::finish) exactly once.

use crate::catalog::PriceSource;
use crate::config::ModelRoute;
use crate::plugins::bindings::{PriceEntry, Usage};
use crate::plugins::{ApiFormat, Plugin};
use std::sync::Arc;
use std::time::SystemTime;
use uuid::Uuid;

/// Who is calling (an authenticated API key and its tenant).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller {
    pub key_id: Uuid,
    pub tenant_id: Uuid,
}

/// A request's route, resolved against one config and one plugin set.
#[derive(Debug, Clone)]
pub struct Routed {
    pub route: Arc<ModelRoute>,
    pub plugin: Arc<Plugin>,
    pub price: PriceEntry,
    /// Content version of `price` (recorded with the transaction).
    pub price_version: String,
    pub price_source: PriceSource,
}

/// An amount held for a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hold {
    pub amount_nano: i64,
    /// Held in this process from a balance lease (`lease.rs`) rather than in Redis.
    pub lease: Option<super::lease::LeaseTag>,
}

/// The reservation's result: the estimate (kept for billing an interrupted answer) and the
/// hold (`None` when Redis is down and the gateway is configured to fail open).
#[derive(Debug, Clone)]
pub struct Reserved {
    pub estimate: Usage,
    pub hold: Option<Hold>,
}

/// Who made a request's id. It decides whether the reserve checks the id for reuse and how
/// long Redis keeps the finished request's state (`balance.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdOrigin {
    /// The client's own (`Idempotency-Key`, `X-Request-Id`).
    Client,
    /// Made by the gateway (a new UUID v7): no earlier request can have it.
    Gateway,
}

/// One request as billing sees it.
#[derive(Debug)]
pub struct Bill {
    pub request_id: String,
    /// The id the client sent, when it sent one.
    pub client_request_id: Option<String>,
    pub caller: Caller,
    pub format: ApiFormat,
    pub model_requested: String,
    pub stream: bool,
    pub started_at: SystemTime,
    /// Set by the route phase.
    pub routed: Option<Routed>,
    /// Set by the reserve phase.
    pub reserved: Option<Reserved>,
}

impl Bill {
    /// Who made `request_id`.
    pub fn id_origin(&self) -> IdOrigin {
        if self.client_request_id.as_deref() == Some(self.request_id.as_str()) {
            IdOrigin::Client
        } else {
            IdOrigin::Gateway
        }
    }

    /// The held amount, if a hold was taken.
    pub fn hold(&self) -> Option<Hold> {
        self.reserved.as_ref().and_then(|r| r.hold)
    }
}
