//! The batch writer: queue -> spool (durable, acknowledged) -> Postgres (idempotent).

use super::bounds::{bound_id, bound_row};
use super::pending::PendingDebits;
use super::refusal::{Failure, classify};
use super::row::TransactionRow;
use super::spool::Spool;
use super::unrecorded::Unrecorded;
use parking_lot::Mutex;
use sqlx::PgPool;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

/// Writer tuning.
#[derive(Debug, Clone)]
pub struct LedgerConfig {
    pub spool_dir: PathBuf,
    pub queue_capacity: usize,
    pub max_batch: usize,
    /// How long a batch waits for more rows.
    pub batch_window: Duration,
    /// How often a Postgres outage is retried.
    pub retry_interval: Duration,
    /// The spool is emptied once everything in it is in Postgres and it is this big.
    pub compact_bytes: u64,
}

impl LedgerConfig {
    /// Defaults with the given spool directory.
    pub fn new(spool_dir: PathBuf) -> Self {
        LedgerConfig {
            spool_dir,
            queue_capacity: 10_000,
            max_batch: 1_000,
            batch_window: Duration::from_millis(5),
            retry_interval: Duration::from_millis(500),
            compact_bytes: 1 << 20,
        }
    }
}

/// Why a row could not be accepted.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("ledger is shut down")]
    Closed,
    #[error(transparent)]
    Spool(#[from] super::spool::SpoolError),
}

/// Messages to the writer.
enum Submit {
    /// Make a row durable (spool) and acknowledge.
    Record { row: Box<TransactionRow>, durable: oneshot::Sender<()> },
    /// The row's Redis settlement finished (`settled_cost` when Redis was debited): only
    /// now may it go to Postgres, so a row in Postgres is always a debit already applied
    /// in Redis (which is what rebuilding a balance from Postgres relies on).
    Confirm { key: (Uuid, String), settled_cost: Option<i64> },
}

pub(super) type RowKey = (Uuid, String);

/// The ledger handle (cheap to share).
pub struct Ledger {
    tx: Mutex<Option<mpsc::Sender<Submit>>>,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
    pending: Arc<PendingDebits>,
    db: PgPool,
}

impl std::fmt::Debug for Ledger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Ledger")
    }
}

pub(super) struct Writer {
    pub(super) db: PgPool,
    spool: Arc<std::sync::Mutex<Spool>>,
    config: LedgerConfig,
    pub(super) pending: Arc<PendingDebits>,
    /// Spooled rows whose settlement is not confirmed yet.
    awaiting: HashMap<RowKey, TransactionRow>,
    /// Confirmed rows waiting for the next insert.
    ready: Vec<TransactionRow>,
    /// Confirmed, Redis-debited rows not yet in Postgres: key -> cost.
    pub(super) uncommitted: HashMap<RowKey, i64>,
    /// Spooled rows not in Postgres yet, by the time they were accepted (shared with the
    /// gauge ticker).
    pub(super) unrecorded: Arc<Mutex<Unrecorded<RowKey>>>,
    /// Postgres failed; everything since is only in the spool.
    backlog: bool,
    last_attempt: Instant,
}

impl Ledger {
    /// Opens the spool (replaying what a previous run left) and starts the writer.
    pub async fn start(db: PgPool, config: LedgerConfig, pending: Arc<PendingDebits>) -> Result<Ledger, LedgerError> {
        let dir = config.spool_dir.clone();
        let (spool, leftover) =
            tokio::task::spawn_blocking(move || Spool::open(&dir)).await.expect("spool open task")?;
        if let Err(e) = super::insert::ensure_partitions(&db).await {
            tracing::warn!(error = %e, "cannot create ledger partitions now (rows go to the default partition)");
        }
        let (tx, rx) = mpsc::channel(config.queue_capacity);
        let mut writer = Writer {
            db: db.clone(),
            spool: Arc::new(std::sync::Mutex::new(spool)),
            config,
            pending: pending.clone(),
            awaiting: HashMap::new(),
            ready: Vec::new(),
            uncommitted: HashMap::new(),
            unrecorded: Arc::default(),
            backlog: !leftover.is_empty(),
            last_attempt: Instant::now() - Duration::from_secs(3600),
        };
        // Rows a previous run left count as accepted now (their spooling time is not kept).
        let now = Instant::now();
        for row in &leftover {
            writer.unrecorded.lock().accepted((row.tenant_id, bound_id(&row.request_id).into_owned()), now);
        }
        spawn_gauge_ticker(writer.config.retry_interval, tx.downgrade(), Arc::downgrade(&writer.unrecorded));
        if !leftover.is_empty() {
            tracing::info!(rows = leftover.len(), "replaying ledger spool from a previous run");
            writer.replay().await;
        }
        let task = tokio::spawn(writer.run(rx));
        Ok(Ledger { tx: Mutex::new(Some(tx)), task: Mutex::new(Some(task)), pending, db })
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
        metrics::gauge!("xjp_ledger_queue_depth").set((tx.max_capacity() - tx.capacity()) as f64);
        done.await.map_err(|_| LedgerError::Closed)
    }

    /// The recorded row's settlement is done (`settled_cost`: what Redis was debited).
    pub async fn confirm(&self, tenant: Uuid, request_id: &str, settled_cost: Option<i64>) {
        let tx = self.tx.lock().clone();
        if let Some(tx) = tx {
            let key = (tenant, bound_id(request_id).into_owned());
            let _ = tx.send(Submit::Confirm { key, settled_cost }).await;
        }
    }

    /// Records a row that moves no money (a refused request).
    pub async fn record_final(&self, row: TransactionRow) -> Result<(), LedgerError> {
        let (tenant, id) = (row.tenant_id, row.request_id.clone());
        self.record(row).await?;
        self.confirm(tenant, &id, None).await;
        Ok(())
    }

    /// Unrecorded debits (shared with the balance store).
    pub fn pending(&self) -> &Arc<PendingDebits> {
        &self.pending
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

    /// Whether `request_id` already has a row in Postgres.
    pub async fn has_row(&self, tenant: Uuid, request_id: &str) -> Result<bool, sqlx::Error> {
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

impl Writer {
    async fn run(mut self, mut rx: mpsc::Receiver<Submit>) {
        loop {
            let first = if self.backlog {
                match tokio::time::timeout(self.config.retry_interval, rx.recv()).await {
                    Ok(Some(s)) => Some(s),
                    Ok(None) => break,
                    Err(_) => None,
                }
            } else {
                match rx.recv().await {
                    Some(s) => Some(s),
                    None => break,
                }
            };
            let mut batch: Vec<Submit> = first.into_iter().collect();
            if !batch.is_empty() {
                let deadline = tokio::time::Instant::now() + self.config.batch_window;
                while batch.len() < self.config.max_batch {
                    match tokio::time::timeout_at(deadline, rx.recv()).await {
                        Ok(Some(s)) => batch.push(s),
                        _ => break,
                    }
                }
                self.write(batch).await;
            }
            if self.backlog && self.last_attempt.elapsed() >= self.config.retry_interval {
                self.replay().await;
            }
            report_gauges(rx.len(), &self.unrecorded.lock());
        }
        if self.backlog {
            self.replay().await;
        }
        report_gauges(0, &self.unrecorded.lock());
        tracing::info!(backlog = self.backlog, "ledger writer stopped");
    }

    /// Spools new rows (durable, acknowledged), takes confirmations, inserts what is ready.
    async fn write(&mut self, batch: Vec<Submit>) {
        let mut rows = Vec::new();
        let mut acks = Vec::new();
        let mut confirms = Vec::new();
        for msg in batch {
            match msg {
                Submit::Record { row, durable } => {
                    rows.push(*row);
                    acks.push(durable);
                }
                Submit::Confirm { key, settled_cost } => confirms.push((key, settled_cost)),
            }
        }
        if !rows.is_empty() {
            let rows = Arc::new(rows);
            loop {
                let (spool, r) = (self.spool.clone(), rows.clone());
                let appended = tokio::task::spawn_blocking(move || spool.lock().expect("spool lock").append(&r))
                    .await
                    .expect("spool task");
                match appended {
                    Ok(()) => break,
                    Err(e) => {
                        metrics::counter!("xjp_ledger_spool_errors_total").increment(1);
                        tracing::error!(error = %e, "cannot write the ledger spool; retrying");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
            }
            self.report_spool();
            let now = Instant::now();
            let mut unrecorded = self.unrecorded.lock();
            for row in rows.iter() {
                let key = (row.tenant_id, row.request_id.clone());
                unrecorded.accepted(key.clone(), now);
                self.awaiting.insert(key, row.clone());
            }
            drop(unrecorded);
            for ack in acks {
                let _ = ack.send(());
            }
        }
        for (key, settled_cost) in confirms {
            if let Some(row) = self.awaiting.remove(&key) {
                if let Some(cost) = settled_cost {
                    // Registered as pending by the settlement itself; un-registered on commit.
                    self.uncommitted.insert(key, cost);
                }
                self.ready.push(row);
            }
        }
        if self.backlog || self.ready.is_empty() {
            return; // a replay inserts them with the rest of the spool
        }
        self.last_attempt = Instant::now();
        let ready = std::mem::take(&mut self.ready);
        match self.insert_all(&ready).await {
            Ok(()) => {
                let len = self.spool.lock().expect("spool lock").len();
                if len >= self.config.compact_bytes && self.awaiting.is_empty() {
                    self.clear_spool().await;
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, rows = ready.len(), "postgres unavailable; rows stay in the spool until it returns");
                self.backlog = true;
            }
        }
    }

    /// Inserts everything in the spool (idempotently), then empties it.
    async fn replay(&mut self) {
        self.last_attempt = Instant::now();
        let spool = self.spool.clone();
        let rows = match tokio::task::spawn_blocking(move || spool.lock().expect("spool lock").read_all())
            .await
            .expect("spool task")
        {
            Ok(rows) => rows,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the ledger spool");
                return;
            }
        };
        // Rows still waiting for their settlement must not reach Postgres yet. Rows are
        // bounded again: a spool written by an older version may hold longer ones.
        let rows: Vec<TransactionRow> = rows
            .into_iter()
            .map(bound_row)
            .filter(|r| !self.awaiting.contains_key(&(r.tenant_id, r.request_id.clone())))
            .collect();
        for chunk in rows.chunks(self.config.max_batch.max(1)) {
            if let Err(e) = self.insert_all(chunk).await {
                tracing::debug!(error = %e, "postgres still unavailable");
                return;
            }
        }
        metrics::counter!("xjp_ledger_replays_total").increment(1);
        tracing::info!(rows = rows.len(), "ledger spool replayed into postgres");
        self.backlog = false;
        self.ready.clear();
        if self.awaiting.is_empty() {
            self.clear_spool().await;
        }
    }

    async fn clear_spool(&mut self) {
        let spool = self.spool.clone();
        if let Err(e) =
            tokio::task::spawn_blocking(move || spool.lock().expect("spool lock").clear()).await.expect("spool task")
        {
            tracing::error!(error = %e, "cannot empty the ledger spool (it is replayed idempotently)");
        }
        self.report_spool();
    }

    fn report_spool(&self) {
        let len = self.spool.lock().expect("spool lock").len();
        metrics::gauge!("xjp_ledger_spool_bytes").set(len as f64);
    }
}

/// Rows queued for the writer, and how long the oldest accepted (spooled) row has waited
/// for Postgres: 0 when every spooled row is in Postgres, growing while the ledger is stuck.
fn report_gauges(queued: usize, unrecorded: &Unrecorded<RowKey>) {
    metrics::gauge!("xjp_ledger_queue_depth").set(queued as f64);
    metrics::gauge!("xjp_ledger_oldest_unrecorded_seconds").set(unrecorded.oldest_age().as_secs_f64());
}

/// Reports the gauges every `every` (the retry interval) besides after each batch: the
/// writer itself may wait on Postgres for seconds (a pool acquire in an outage), or on an
/// empty queue. Ends with the writer.
fn spawn_gauge_ticker(every: Duration, queue: mpsc::WeakSender<Submit>, unrecorded: Weak<Mutex<Unrecorded<RowKey>>>) {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(every).await;
            let (Some(tx), Some(unrecorded)) = (queue.upgrade(), unrecorded.upgrade()) else { return };
            report_gauges(tx.max_capacity() - tx.capacity(), &unrecorded.lock());
        }
    });
}
