//! Debits this gateway settled in Redis whose ledger rows are not in Postgres yet.
//! Loading a balance from Postgres subtracts them, so a Redis flush never lets a tenant
//! spend what it already spent.

use parking_lot::Mutex;
use std::collections::HashMap;
use uuid::Uuid;

/// Per-tenant sum of unrecorded debits (nano-USD).
#[derive(Debug, Default)]
pub struct PendingDebits {
    by_tenant: Mutex<HashMap<Uuid, i64>>,
    /// Held for writing while rows are inserted and un-pended, for reading while a balance
    /// is loaded: a load never sees a debit both in Postgres and still pending.
    pub commit: tokio::sync::RwLock<()>,
}

impl PendingDebits {
    /// A debit was settled and its row queued.
    pub fn add(&self, tenant: Uuid, nano: i64) {
        if nano != 0 {
            *self.by_tenant.lock().entry(tenant).or_insert(0) += nano;
        }
    }

    /// The row reached Postgres (inserted, or found already there).
    pub fn recorded(&self, tenant: Uuid, nano: i64) {
        if nano == 0 {
            return;
        }
        let mut map = self.by_tenant.lock();
        if let Some(v) = map.get_mut(&tenant) {
            *v -= nano;
            if *v == 0 {
                map.remove(&tenant);
            }
        }
    }

    /// The tenant's unrecorded debits.
    pub fn get(&self, tenant: Uuid) -> i64 {
        self.by_tenant.lock().get(&tenant).copied().unwrap_or(0)
    }
}
