//! The holds of requests running in this process. They are renewed every third of the hold
//! TTL, so the sweeper (which releases holds whose gateway died) never releases the hold of a
//! request that is still streaming; a hold lives as long as its request.

use super::Balances;
use parking_lot::Mutex;
use std::collections::{HashMap, HashSet};
use uuid::Uuid;

/// Request ids with an open hold, by tenant.
#[derive(Debug, Default)]
pub struct RunningHolds {
    by_tenant: Mutex<HashMap<Uuid, HashSet<String>>>,
}

impl RunningHolds {
    /// A hold was taken.
    pub fn add(&self, tenant: Uuid, request_id: &str) {
        self.by_tenant.lock().entry(tenant).or_default().insert(request_id.to_string());
    }

    /// The request settled (its hold is gone).
    pub fn remove(&self, tenant: Uuid, request_id: &str) {
        let mut map = self.by_tenant.lock();
        if let Some(ids) = map.get_mut(&tenant) {
            ids.remove(request_id);
            if ids.is_empty() {
                map.remove(&tenant);
            }
        }
    }

    /// Extends every open hold by a hold TTL from now (one script per tenant).
    pub async fn renew(&self, balances: &Balances) {
        let snapshot: Vec<(Uuid, Vec<String>)> =
            self.by_tenant.lock().iter().map(|(t, ids)| (*t, ids.iter().cloned().collect())).collect();
        for (tenant, ids) in snapshot {
            if let Err(e) = balances.renew(tenant, &ids).await {
                metrics::counter!("xjp_hold_renew_errors_total").increment(1);
                tracing::warn!(%tenant, error = %e, "could not renew running holds; retrying next round");
            }
        }
    }
}
