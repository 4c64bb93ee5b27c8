//! The ledger handle and its two stages: queue -> spool stage (`ledger::spooler`: append,
//! fsync, acknowledge) -> insert stage (`ledger::inserter`: Postgres, idempotent). The spool
//! stage writes batch N+1 while the insert stage inserts batch N; the channel between them
//! is unbounded, so a slow Postgres never slows acknowledgements: the spool absorbs it, up
//! to the bound that load shedding enforces ([`Ledger::backlog`]).

use super::backlog::Backlog;
use super::bounds::{bound_id, bound_row};
use super::inserter::Inserter;
use super::pending::PendingDebits;
use super::recount::{Committed, Debit};
use super::refusal::{Failure, classify};
use super::row::TransactionRow;
use super::spool::Spool;
use super::stages::{RowKey, SharedSpool, Submit};
use super::unrecorded::Place;
use parking_lot::Mutex;
use sqlx::PgPool;
use std::collections::HashSet;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

/// Why a row could not be accepted.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("ledger is shut down")]
    Closed,
    #[error(transparent)]
    Spool(#[from] super::spool::SpoolError),
}

pub use super::stages::LedgerConfig;

/// A row a previous run left in the spool: its debit may not have reached Redis (see
/// [`Ledger::take_left_behind`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeftBehind {
    pub tenant: Uuid,
    pub request_id: String,
    pub cost_nano: i64,
}

/// The ledger handle (cheap to share).
pub struct Ledger {
    tx: Mutex<Option<mpsc::Sender<Submit>>>,
    /// Rows a previous run left, until billing takes them.
    left_behind: Mutex<Vec<LeftBehind>>,
    /// Commits of debits, until billing takes the queue (`billing::recount`).
    commits: Mutex<Option<mpsc::Receiver<Committed>>>,
    /// When this run opened the spool (before replaying it).
    started_at: SystemTime,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
    pending: Arc<PendingDebits>,
    backlog: Arc<Backlog>,
    db: PgPool,
}

impl std::fmt::Debug for Ledger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Ledger")
    }
}

impl Ledger {
    /// Opens the spool (replaying what a previous run left) and starts both stages.
    pub async fn start(db: PgPool, config: LedgerConfig, pending: Arc<PendingDebits>) -> Result<Ledger, LedgerError> {
        let started_at = SystemTime::now();
        let dir = config.spool_dir.clone();
        let (spool, leftover) =
            tokio::task::spawn_blocking(move || Spool::open(&dir)).await.expect("spool open task")?;
        if let Err(e) = super::insert::ensure_partitions(&db).await {
            tracing::warn!(error = %e, "cannot create ledger partitions now (rows go to the default partition)");
        }
        // Rows a previous run left count as accepted and settled now (their spooling time
        // is not kept); they are replayed from the spool.
        let backlog = Arc::new(Backlog::default());
        backlog.set_bytes(spool.len());
        let (now, mut replay, mut rows) = (Instant::now(), HashSet::new(), 0);
        let mut left_behind = Vec::new();
        for segment in leftover {
            left_behind.extend(segment.rows.iter().map(|(_, r)| LeftBehind {
                tenant: r.tenant_id,
                request_id: bound_id(&r.request_id).into_owned(),
                cost_nano: r.cost_nano,
            }));
            let keys: Vec<(RowKey, Place)> = (segment.rows.iter())
                .map(|(offset, r)| {
                    let place = Place { segment: segment.segment, offset: *offset };
                    ((r.tenant_id, bound_id(&r.request_id).into_owned()), place)
                })
                .collect();
            backlog.spooled(keys.iter().map(|(k, p)| (k, *p)), now);
            rows += keys.len();
            replay.extend(keys.into_iter().map(|(k, _)| k));
        }
        // A row spooled twice is one row (as the replay inserts it once).
        let mut seen = HashSet::new();
        left_behind.retain(|r| seen.insert((r.tenant, r.request_id.clone())));
        let spool: SharedSpool = Arc::new(std::sync::Mutex::new(spool));
        let (tx, rx) = mpsc::channel(config.queue_capacity);
        let (stage_tx, stage_rx) = mpsc::unbounded_channel();
        let (commit_tx, commits) = super::recount::queue();
        let parts = (db.clone(), spool.clone(), config.clone(), pending.clone(), backlog.clone());
        let mut inserter = Inserter::new(parts, stage_rx, replay, commit_tx);
        if rows > 0 {
            tracing::info!(rows, "replaying ledger spool from a previous run");
            inserter.replay().await;
        }
        spawn_gauge_ticker(config.retry_interval, tx.downgrade(), Arc::downgrade(&backlog));
        let spooler = tokio::spawn(super::spooler::run(spool, backlog.clone(), config, rx, stage_tx));
        let task = tokio::spawn(async move {
            inserter.run().await;
            let _ = spooler.await;
        });
        let left_behind = Mutex::new(left_behind);
        Ok(Ledger {
            tx: Mutex::new(Some(tx)),
            left_behind,
            commits: Mutex::new(Some(commits)),
            started_at,
            task: Mutex::new(Some(task)),
            pending,
            backlog,
            db,
        })
    }

    /// Queues a row; resolves once it is durable (in the spool). Then the debit it records
    /// may be settled, and [`confirm`](Self::confirm)ed: if the process dies in between,
    /// the row is replayed on restart and the sweeper settles its expired hold from it.
    /// Its variable-length fields are bounded first (`ledger::bounds`), so it fits a frame.
    pub async fn record(&self, row: TransactionRow) -> Result<(), LedgerError> {
        let tx = self.tx.lock().clone().ok_or(LedgerError::Closed)?;
        let (durable, done) = oneshot::channel();
        let row = Box::new(bound_row(row));
        tx.send(Submit::Record { row, durable }).await.map_err(|_| LedgerError::Closed)?;
        done.await.map_err(|_| LedgerError::Closed)
    }

    /// The recorded row's settlement is done (`debit`: what Redis was debited, and under
    /// which epoch of the account).
    pub async fn confirm(&self, tenant: Uuid, request_id: &str, debit: Option<Debit>) {
        let tx = self.tx.lock().clone();
        if let Some(tx) = tx {
            let key = (tenant, bound_id(request_id).into_owned());
            let _ = tx.send(Submit::Confirm { key, debit }).await;
        }
    }

    /// The queue of committed debits (once; `None` afterwards): billing checks each against
    /// the account's rebuild (`billing::recount`).
    pub fn take_commits(&self) -> Option<mpsc::Receiver<Committed>> {
        self.commits.lock().take()
    }

    /// Records a row that moves no money (a refused request).
    pub async fn record_final(&self, row: TransactionRow) -> Result<(), LedgerError> {
        let (tenant, id) = (row.tenant_id, row.request_id.clone());
        self.record(row).await?;
        self.confirm(tenant, &id, None).await;
        Ok(())
    }

    /// The rows a previous run left in the spool (once; empty afterwards). They are replayed
    /// into Postgres like any row, but a run that died between spooling a row and settling
    /// it left its hold open, and one down longer than the hold TTL had it released by the
    /// sweeper without a debit: billing reconciles them in Redis once they are recorded.
    pub fn take_left_behind(&self) -> Vec<LeftBehind> {
        std::mem::take(&mut *self.left_behind.lock())
    }

    /// When this run opened its spool, before replaying it: a left-behind row recorded
    /// earlier was in Postgres before this run (settled by its own run, or by the sweeper).
    pub fn started_at(&self) -> SystemTime {
        self.started_at
    }

    /// The ids among `request_ids` whose row was recorded in Postgres at or after `since`.
    pub async fn recorded_since(
        &self,
        tenant: Uuid,
        request_ids: &[String],
        since: SystemTime,
    ) -> Result<Vec<String>, sqlx::Error> {
        super::lookup::recorded_since(&self.db, tenant, request_ids, since).await
    }

    /// Whether `request_id`'s row waits in this gateway's spool (not in Postgres yet).
    pub fn waits(&self, tenant: Uuid, request_id: &str) -> bool {
        self.backlog.contains(&(tenant, bound_id(request_id).into_owned()))
    }

    /// Unrecorded debits (shared with the balance store).
    pub fn pending(&self) -> &Arc<PendingDebits> {
        &self.pending
    }

    /// Rows in the spool and not in Postgres yet, and the spool's size: what load shedding
    /// reads (`Backlog::exceeds`, two atomic loads).
    pub fn backlog(&self) -> &Backlog {
        &self.backlog
    }

    /// The ids among `request_ids` that already have a row, with the row's cost.
    pub async fn recorded_costs(
        &self,
        tenant: Uuid,
        request_ids: &[String],
    ) -> Result<Vec<(String, i64)>, sqlx::Error> {
        // Rows carry bounded ids (unchanged up to 256 bytes: every id the edge accepts).
        let bounded: Vec<String> = request_ids.iter().map(|id| bound_id(id).into_owned()).collect();
        let found = super::lookup::recorded_costs(&self.db, tenant, &bounded).await?;
        Ok(found
            .into_iter()
            .filter_map(|(id, cost)| Some((request_ids[bounded.iter().position(|b| *b == id)?].clone(), cost)))
            .collect())
    }

    /// Whether `request_id` already has a row: waiting in this gateway's spool, or in
    /// Postgres.
    pub async fn has_row(&self, tenant: Uuid, request_id: &str) -> Result<bool, sqlx::Error> {
        if self.waits(tenant, request_id) {
            return Ok(true);
        }
        super::lookup::has_row(&self.db, tenant, request_id).await
    }

    /// Folds recorded rows into the daily summary until none is left (failures are counted
    /// in `xjp_rollup_errors_total`).
    pub async fn rollup(&self) -> Result<(), sqlx::Error> {
        let result = super::rollup::rollup_all(&self.db).await;
        if let Err(e) = &result {
            let kind = if classify(e) == Failure::Outage { "outage" } else { "refusal" };
            metrics::counter!("xjp_rollup_errors_total", "kind" => kind).increment(1);
        }
        result
    }

    /// Stops accepting rows and waits until every queued row is in the spool and, if
    /// Postgres is up, in Postgres.
    pub async fn shutdown(&self) {
        self.tx.lock().take();
        let task = self.task.lock().take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }
}

/// Reports the gauges every `every` (the retry interval) besides after each batch: the
/// stages themselves may wait on Postgres for seconds (a pool acquire in an outage), or on
/// an empty queue. Ends with the writer.
fn spawn_gauge_ticker(every: Duration, queue: mpsc::WeakSender<Submit>, backlog: Weak<Backlog>) {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(every).await;
            let (Some(tx), Some(backlog)) = (queue.upgrade(), backlog.upgrade()) else { return };
            metrics::gauge!("xjp_ledger_queue_depth").set((tx.max_capacity() - tx.capacity()) as f64);
            backlog.report();
        }
    });
}
