//! What the writer's stages share: the tuning, a row's identity, the spool handle and the
//! messages into the spool stage.

use super::row::TransactionRow;
use super::spool::Spool;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;
use uuid::Uuid;

/// Writer tuning.
#[derive(Debug, Clone)]
pub struct LedgerConfig {
    pub spool_dir: PathBuf,
    pub queue_capacity: usize,
    /// Rows per spool append and per Postgres statement.
    pub max_batch: usize,
    /// How long a spool batch waits for more rows.
    pub batch_window: Duration,
    /// How long an insert short of `max_batch` rows waits for more (`[billing]
    /// insert_linger_ms`): rows are durable in the spool and debited in Redis by then, so
    /// this only delays when they show in Postgres, for fewer, larger transactions.
    pub insert_linger: Duration,
    /// How often a Postgres outage is retried.
    pub retry_interval: Duration,
    /// The active spool segment is sealed at this size (deleted once its rows are in Postgres).
    pub segment_bytes: u64,
    /// The active segment is emptied once every spooled row is in Postgres and it is this big.
    pub compact_bytes: u64,
    /// Insert statements run at once (each on its own connection): Postgres inserts a
    /// statement's rows on one core.
    pub inserters: usize,
    /// Confirmed rows kept in memory for the insert stage; beyond them rows wait in the
    /// spool only and are replayed from it (memory stays bounded when Postgres is slow).
    pub max_ready: usize,
}

impl LedgerConfig {
    /// Defaults with the given spool directory.
    pub fn new(spool_dir: PathBuf) -> Self {
        LedgerConfig {
            spool_dir,
            queue_capacity: 20_000,
            max_batch: 5_000,
            batch_window: Duration::from_millis(5),
            insert_linger: Duration::from_millis(crate::config::BillingConfig::default().insert_linger_ms),
            retry_interval: Duration::from_millis(500),
            segment_bytes: 32 << 20,
            compact_bytes: 1 << 20,
            inserters: 2,
            max_ready: 20_000,
        }
    }
}

/// Messages to the spool stage.
pub(super) enum Submit {
    /// Make a row durable (spool) and acknowledge.
    Record { row: Box<TransactionRow>, durable: oneshot::Sender<()> },
    /// The row's Redis settlement finished (`debit` when Redis was debited): only
    /// now may it go to Postgres, so a row in Postgres is always a debit already applied
    /// in Redis (which is what rebuilding a balance from Postgres relies on).
    Confirm { key: RowKey, debit: Option<super::recount::Debit> },
}

/// A row's identity: (tenant, bounded request id).
pub(super) type RowKey = (Uuid, String);

/// The spool, shared by the stages (appends and segment changes take the lock).
pub(super) type SharedSpool = Arc<std::sync::Mutex<Spool>>;
