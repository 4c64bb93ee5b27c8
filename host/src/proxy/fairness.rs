//! Fairness between tenants: a cap on the requests and streams one tenant has running at
//! once (`[limits] max_concurrent_per_tenant`, `[limits.per_tenant]`), so one tenant's
//! stalled readers cannot take every plugin instance or drain slot from the rest.

use crate::api::GatewayError;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use uuid::Uuid;

/// What each tenant has running.
#[derive(Debug, Default)]
pub struct TenantSlots {
    running: Mutex<HashMap<Uuid, usize>>,
}

/// One running request of a tenant; released when dropped (the request context holds it
/// until the request ends, a stream's drain included).
#[derive(Debug)]
pub struct TenantSlot {
    slots: Arc<TenantSlots>,
    tenant: Uuid,
}

impl TenantSlots {
    /// A slot for `tenant` if it has fewer than `cap` running, else 429.
    pub fn take(self: &Arc<Self>, tenant: Uuid, cap: usize) -> Result<TenantSlot, GatewayError> {
        let mut running = self.running.lock();
        let n = running.entry(tenant).or_insert(0);
        if *n >= cap {
            metrics::counter!("xjp_tenant_limit_refusals_total").increment(1);
            return Err(GatewayError::TenantBusy { limit: cap });
        }
        *n += 1;
        Ok(TenantSlot { slots: self.clone(), tenant })
    }

    /// Requests `tenant` has running.
    pub fn running(&self, tenant: &Uuid) -> usize {
        self.running.lock().get(tenant).copied().unwrap_or(0)
    }
}

impl Drop for TenantSlot {
    fn drop(&mut self) {
        let mut running = self.slots.running.lock();
        if let Some(n) = running.get_mut(&self.tenant) {
            *n -= 1;
            if *n == 0 {
                running.remove(&self.tenant);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tenant_at_its_cap_is_refused_others_are_not() {
        let slots = Arc::new(TenantSlots::default());
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let held: Vec<_> = (0..2).map(|_| slots.take(a, 2).unwrap()).collect();
        assert!(matches!(slots.take(a, 2), Err(GatewayError::TenantBusy { limit: 2 })));
        assert!(slots.take(b, 2).is_ok());
        drop(held);
        assert_eq!(slots.running(&a), 0);
        assert!(slots.running.lock().is_empty(), "no entry left for idle tenants");
        assert!(slots.take(a, 2).is_ok());
    }
}
