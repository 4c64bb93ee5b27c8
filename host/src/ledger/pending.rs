//! Debits this gateway applied in Redis whose ledger rows are not in Postgres yet.
//!
//! Loading a balance from Postgres subtracts them, so a Redis flush never lets a tenant
//! spend twice. A per-tenant lock (sharded) makes it exact within one gateway: settling
//! (script + registering the debit) and committing rows (insert + un-registering) take it
//! shared; loading (Postgres read + register read + load script) takes it exclusively, so
//! a load never sees a debit both in Postgres and pending, nor misses one applied just
//! before a flush.

use parking_lot::Mutex;
use std::collections::HashMap;
use tokio::sync::RwLock;
use uuid::Uuid;

const SHARDS: usize = 64;

/// Per-tenant sum of unrecorded debits (nano-USD) and the per-tenant lock.
#[derive(Debug)]
pub struct PendingDebits {
    by_tenant: Mutex<HashMap<Uuid, i64>>,
    locks: Vec<RwLock<()>>,
}

impl Default for PendingDebits {
    fn default() -> Self {
        PendingDebits { by_tenant: Mutex::new(HashMap::new()), locks: (0..SHARDS).map(|_| RwLock::new(())).collect() }
    }
}

impl PendingDebits {
    /// The lock for a tenant's balance (shared: settle and commit; exclusive: load).
    pub fn lock(&self, tenant: Uuid) -> &RwLock<()> {
        &self.locks[(tenant.as_u128() % SHARDS as u128) as usize]
    }

    /// A debit was applied in Redis (call under the shared lock).
    pub fn add(&self, tenant: Uuid, nano: i64) {
        if nano != 0 {
            *self.by_tenant.lock().entry(tenant).or_insert(0) += nano;
        }
    }

    /// The row of a debit reached Postgres (call under the shared lock).
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
