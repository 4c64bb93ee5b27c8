//! The batch writer: queue -> spool (durable, acknowledged) -> Postgres (idempotent).

use super::insert::insert_batch;
use super::row::TransactionRow;
use super::spool::Spool;
use crate::billing::pending::PendingDebits;
use parking_lot::Mutex;
use sqlx::PgPool;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
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

struct Submit {
    row: TransactionRow,
    durable: oneshot::Sender<()>,
}

/// The ledger handle (cheap to share).
pub struct Ledger {
    tx: Mutex<Option<mpsc::Sender<Submit>>>,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
    pending: Arc<PendingDebits>,
}

impl std::fmt::Debug for Ledger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Ledger")
    }
}

struct Writer {
    db: PgPool,
    spool: Arc<std::sync::Mutex<Spool>>,
    config: LedgerConfig,
    pending: Arc<PendingDebits>,
    /// Spooled rows not yet in Postgres: (tenant, request) -> cost.
    uncommitted: HashMap<(Uuid, String), i64>,
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
            db,
            spool: Arc::new(std::sync::Mutex::new(spool)),
            config,
            pending: pending.clone(),
            uncommitted: HashMap::new(),
            backlog: !leftover.is_empty(),
            last_attempt: Instant::now() - Duration::from_secs(3600),
        };
        if !leftover.is_empty() {
            tracing::info!(rows = leftover.len(), "replaying ledger spool from a previous run");
            writer.replay().await;
        }
        let task = tokio::spawn(writer.run(rx));
        Ok(Ledger { tx: Mutex::new(Some(tx)), task: Mutex::new(Some(task)), pending })
    }

    /// Queues a row; resolves once it is durable (in the spool). Then the debit it records
    /// may be settled: if the process dies now, the row is replayed on restart.
    pub async fn record(&self, row: TransactionRow) -> Result<(), LedgerError> {
        let tx = self.tx.lock().clone().ok_or(LedgerError::Closed)?;
        let (durable, done) = oneshot::channel();
        tx.send(Submit { row, durable }).await.map_err(|_| LedgerError::Closed)?;
        metrics::gauge!("xjp_ledger_queue_depth").set((tx.max_capacity() - tx.capacity()) as f64);
        done.await.map_err(|_| LedgerError::Closed)
    }

    /// Unrecorded debits (shared with the balance store).
    pub fn pending(&self) -> &Arc<PendingDebits> {
        &self.pending
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
        }
        if self.backlog {
            self.replay().await;
        }
        tracing::info!(backlog = self.backlog, "ledger writer stopped");
    }

    /// Spools a batch (durable), acknowledges it, then inserts it into Postgres.
    async fn write(&mut self, batch: Vec<Submit>) {
        let (rows, acks): (Vec<TransactionRow>, Vec<oneshot::Sender<()>>) =
            batch.into_iter().map(|s| (s.row, s.durable)).unzip();
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
        for row in rows.iter() {
            self.pending.add(row.tenant_id, row.cost_nano);
            self.uncommitted.insert((row.tenant_id, row.request_id.clone()), row.cost_nano);
        }
        for ack in acks {
            let _ = ack.send(());
        }
        if self.backlog {
            return; // the replay inserts it with the rest of the spool
        }
        self.last_attempt = Instant::now();
        match insert_batch(&self.db, &rows).await {
            Ok(inserted) => {
                self.committed(&rows, inserted);
                let len = self.spool.lock().expect("spool lock").len();
                if len >= self.config.compact_bytes {
                    self.clear_spool().await;
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, rows = rows.len(), "postgres unavailable; rows stay in the spool until it returns");
                self.backlog = true;
            }
        }
    }

    fn committed(&mut self, rows: &[TransactionRow], inserted: u64) {
        metrics::counter!("xjp_ledger_rows_written_total").increment(inserted);
        metrics::counter!("xjp_ledger_duplicates_total").increment(rows.len() as u64 - inserted.min(rows.len() as u64));
        for row in rows {
            if let Some(cost) = self.uncommitted.remove(&(row.tenant_id, row.request_id.clone())) {
                self.pending.recorded(row.tenant_id, cost);
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
        for chunk in rows.chunks(self.config.max_batch.max(1)) {
            match insert_batch(&self.db, chunk).await {
                Ok(inserted) => self.committed(chunk, inserted),
                Err(e) => {
                    tracing::debug!(error = %e, "postgres still unavailable");
                    return;
                }
            }
        }
        metrics::counter!("xjp_ledger_replays_total").increment(1);
        tracing::info!(rows = rows.len(), "ledger spool replayed into postgres");
        self.backlog = false;
        self.clear_spool().await;
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
