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

    #[test]
    fn a_per_tenant_override_replaces_the_default_cap_for_that_tenant_only() {
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        // Spelled in upper case: ids compare as UUIDs, not as text.
        let text = format!(
            "[limits]\nmax_concurrent_per_tenant = 2\n[limits.per_tenant]\n\"{}\" = 5\n",
            b.to_string().to_uppercase()
        );
        let config = crate::config::parse(&text, std::path::Path::new("/etc/xjp/gateway.toml")).unwrap();
        let (cap_a, cap_b) = (config.limits.tenant_cap(&a), config.limits.tenant_cap(&b));
        assert_eq!((cap_a, cap_b), (2, 5));
        let slots = Arc::new(TenantSlots::default());
        let held_a: Vec<_> = (0..2).map(|_| slots.take(a, cap_a).unwrap()).collect();
        assert!(matches!(slots.take(a, cap_a), Err(GatewayError::TenantBusy { limit: 2 })));
        let held_b: Vec<_> = (0..5).map(|_| slots.take(b, cap_b).unwrap()).collect();
        assert!(matches!(slots.take(b, cap_b), Err(GatewayError::TenantBusy { limit: 5 })));
        assert_eq!((held_a.len(), held_b.len()), (slots.running(&a), slots.running(&b)));
    }
}
