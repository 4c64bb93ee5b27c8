//! One request's context (pingora's `CTX`): made once the caller and the request are
//! known, it carries the bill (caller, route, hold) through the phases and hands it to
//! billing exactly once, on every way out: an answer, a refusal, an upstream or plugin
//! failure, a client that left, or a task that stopped (panic, drop).

use super::fairness::TenantSlot;
use crate::api::GatewayError;
use crate::billing::{Bill, Billing, Ending, Refusal, Routed};
use std::sync::Arc;
use std::time::Instant;

/// The request context.
pub struct RequestCtx {
    billing: Arc<Billing>,
    /// `None` once settled.
    bill: Option<Bill>,
    started: Instant,
    /// The tenant's slot (`[limits]`), released when the context ends.
    _slot: Option<TenantSlot>,
}

impl std::fmt::Debug for RequestCtx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestCtx").field("bill", &self.bill).finish()
    }
}

impl RequestCtx {
    /// A context for `bill`, whose latency counts from `started`.
    pub fn new(billing: Arc<Billing>, bill: Bill, started: Instant) -> RequestCtx {
        RequestCtx { billing, bill: Some(bill), started, _slot: None }
    }

    /// The context, holding the tenant's slot until it ends.
    pub fn holding(mut self, slot: TenantSlot) -> RequestCtx {
        self._slot = Some(slot);
        self
    }

    /// What billing knows so far.
    pub fn bill(&self) -> &Bill {
        self.bill.as_ref().expect("a context is settled only by consuming it")
    }

    /// For the phases that fill the bill in (route, reserve).
    pub fn bill_mut(&mut self) -> &mut Bill {
        self.bill.as_mut().expect("a context is settled only by consuming it")
    }

    /// The route (set by the route phase).
    pub fn routed(&self) -> Option<&Routed> {
        self.bill().routed.as_ref()
    }

    /// When the request arrived.
    pub fn started(&self) -> Instant {
        self.started
    }

    /// The billing this context settles with.
    pub fn billing(&self) -> &Arc<Billing> {
        &self.billing
    }

    /// Ends the request: billing prices, records and settles it.
    pub fn finish(mut self, ending: Ending) {
        self.settle(ending);
    }

    /// Ends the request with a refusal and returns the error for the client. A refusal
    /// that is the client's own fault (malformed, duplicate) and holds nothing leaves no row;
    /// one that holds money is recorded all the same, and its hold goes back.
    pub fn refuse(mut self, error: GatewayError) -> GatewayError {
        match Refusal::of(&error) {
            Some(refusal) => self.settle(Ending::Refused(refusal)),
            None if self.bill().hold().is_none() => self.bill = None,
            None => self.settle(Ending::Refused(Refusal::new(&error))),
        }
        error
    }

    fn settle(&mut self, ending: Ending) {
        if let Some(bill) = self.bill.take() {
            self.billing.finish(bill, ending, self.started.elapsed());
        }
    }
}

impl Drop for RequestCtx {
    fn drop(&mut self) {
        if self.bill.is_none() {
            return;
        }
        if tokio::runtime::Handle::try_current().is_err() {
            tracing::error!(bill = ?self.bill, "request context dropped outside the runtime; its hold expires and is swept");
            return;
        }
        tracing::error!(request_id = %self.bill().request_id, "request ended without an outcome; billing its estimate");
        self.settle(Ending::Lost);
    }
}
