//! The insert stage: takes spooled rows and their confirmations from the spool stage, and
//! inserts confirmed rows into Postgres in batches while the spool stage writes the next
//! ones. Rows it cannot keep in memory (Postgres down, or slower than the load) wait only
//! in the spool and are replayed from it (`ledger::replay`); then it deletes the spool
//! segments whose rows are all in Postgres.

use super::backlog::Backlog;
use super::pending::PendingDebits;
use super::recount::{CommitSender, Debit};
use super::row::TransactionRow;
use super::stages::{LedgerConfig, RowKey, SharedSpool};
use parking_lot::Mutex;
use sqlx::PgPool;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::mpsc::{self, error::TryRecvError};

/// Messages from the spool stage.
pub(super) enum Stage {
    /// Rows now durable in the spool.
    Spooled(Vec<TransactionRow>),
    /// A spooled row's settlement finished (see `writer::Submit::Confirm`).
    Confirm { key: RowKey, debit: Option<Debit> },
}

pub(super) struct Inserter {
    pub(super) db: PgPool,
    pub(super) spool: SharedSpool,
    pub(super) config: LedgerConfig,
    pub(super) pending: Arc<PendingDebits>,
    pub(super) backlog: Arc<Backlog>,
    rx: mpsc::UnboundedReceiver<Stage>,
    /// The spool stage is gone and everything it sent has been taken.
    pub(super) closed: bool,
    /// Spooled rows whose settlement is not confirmed yet.
    awaiting: HashMap<RowKey, TransactionRow>,
    /// Confirmed rows for the next inserts.
    ready: Vec<TransactionRow>,
    /// Confirmed rows that are only in the spool: replayed from there.
    pub(super) spilled: HashSet<RowKey>,
    /// Confirmed, Redis-debited rows not yet in Postgres.
    pub(super) uncommitted: Mutex<HashMap<RowKey, Debit>>,
    /// Where commits of debits go (to billing).
    pub(super) commits: CommitSender,
    /// When Postgres last failed as an outage (retried every `retry_interval`).
    pub(super) outage: Option<Instant>,
    /// Sealed segments whose deletion failed (retried).
    undeleted: Vec<u64>,
}

impl Inserter {
    /// The stage; `replay` are rows a previous run left in the spool (settled, to insert).
    pub(super) fn new(
        (db, spool, config, pending, backlog): (PgPool, SharedSpool, LedgerConfig, Arc<PendingDebits>, Arc<Backlog>),
        rx: mpsc::UnboundedReceiver<Stage>,
        replay: HashSet<RowKey>,
        commits: CommitSender,
    ) -> Inserter {
        Inserter {
            db,
            spool,
            config,
            pending,
            backlog,
            rx,
            closed: false,
            awaiting: HashMap::new(),
            ready: Vec::new(),
            spilled: replay,
            uncommitted: Mutex::default(),
            commits,
            outage: None,
            undeleted: Vec::new(),
        }
    }

    /// Runs until the spool stage ends, then inserts what is left (if Postgres is up).
    pub(super) async fn run(mut self) {
        while !self.closed {
            self.spill_ready();
            if self.ready.is_empty() {
                self.wait().await;
            }
            self.take_queued();
            if !self.spilled.is_empty() {
                if self.retry_due() {
                    self.replay().await;
                }
            } else if !self.ready.is_empty() {
                self.linger().await;
                self.insert_ready().await;
            }
            self.delete_done().await;
            self.backlog.report();
        }
        self.spill_ready();
        while !self.ready.is_empty() {
            self.insert_ready().await;
        }
        if !self.spilled.is_empty() {
            self.replay().await;
        }
        self.delete_done().await;
        self.backlog.report();
        tracing::info!(spilled = self.spilled.len(), "ledger writer stopped");
    }

    /// Waits for a message, or (rows spilled) until the next replay is due.
    async fn wait(&mut self) {
        let msg = if self.spilled.is_empty() {
            self.rx.recv().await
        } else {
            let due = self.outage.map_or(Instant::now(), |at| at + self.config.retry_interval);
            match tokio::time::timeout_at(due.into(), self.rx.recv()).await {
                Ok(msg) => msg,
                Err(_) => return,
            }
        };
        match msg {
            Some(msg) => self.handle(msg),
            None => self.closed = true,
        }
    }

    /// Lets a batch short of `max_batch` gather more rows for up to `insert_linger`: at
    /// moderate rates Postgres then commits a few large transactions a second instead of
    /// one per spool batch (a third less Postgres CPU per row at ~5 000 rows/s, less than
    /// half at 50 rows/s).
    async fn linger(&mut self) {
        let deadline = tokio::time::Instant::now() + self.config.insert_linger;
        while !self.closed && self.spilled.is_empty() && self.ready.len() < self.config.max_batch {
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Ok(Some(msg)) => self.handle(msg),
                Ok(None) => self.closed = true,
                Err(_) => return,
            }
        }
    }

    /// Takes what the spool stage has sent meanwhile (bounded, so a flood cannot starve
    /// the inserts).
    pub(super) fn take_queued(&mut self) {
        for _ in 0..self.config.max_batch.max(1) * 2 {
            match self.rx.try_recv() {
                Ok(msg) => self.handle(msg),
                Err(TryRecvError::Empty) => return,
                Err(TryRecvError::Disconnected) => {
                    self.closed = true;
                    return;
                }
            }
        }
    }

    fn handle(&mut self, msg: Stage) {
        match msg {
            Stage::Spooled(rows) => {
                for row in rows {
                    self.awaiting.insert((row.tenant_id, row.request_id.clone()), row);
                }
            }
            Stage::Confirm { key, debit } => {
                let Some(row) = self.awaiting.remove(&key) else { return };
                if let Some(debit) = debit {
                    // Registered as pending by the settlement itself; un-registered on commit.
                    self.uncommitted.get_mut().insert(key.clone(), debit);
                }
                // While rows are spilled, later ones follow them through the spool; so do
                // rows beyond what memory keeps.
                if self.spilled.is_empty() && self.ready.len() < self.config.max_ready {
                    self.ready.push(row);
                } else {
                    self.spilled.insert(key);
                }
            }
        }
    }

    /// Whether a replay may run now (right away, unless Postgres failed recently).
    fn retry_due(&self) -> bool {
        self.outage.is_none_or(|at| at.elapsed() >= self.config.retry_interval)
    }

    /// Inserts the oldest ready rows: up to `inserters` batches at once. On an outage
    /// what was not inserted and the rest of the ready rows are left to the spool.
    async fn insert_ready(&mut self) {
        let n = self.ready.len().min(self.config.max_batch.max(1) * self.config.inserters.max(1));
        let rows: Vec<TransactionRow> = self.ready.drain(..n).collect();
        let batches: Vec<&[TransactionRow]> = rows.chunks(self.config.max_batch.max(1)).collect();
        let results = self.insert_concurrently(&batches).await;
        let failed: Vec<&TransactionRow> =
            batches.iter().zip(&results).filter(|(_, r)| r.is_err()).flat_map(|(b, _)| b.iter()).collect();
        if let Some(Err(e)) = results.iter().find(|r| r.is_err()) {
            tracing::warn!(error = %e, rows = failed.len() + self.ready.len(), "postgres unavailable; rows stay in the spool until it returns");
            self.outage = Some(Instant::now());
            let rest = std::mem::take(&mut self.ready);
            self.spill(failed.into_iter().chain(&rest));
        }
    }

    /// While rows are spilled, the ready ones follow them through the spool.
    fn spill_ready(&mut self) {
        if !self.spilled.is_empty() && !self.ready.is_empty() {
            let ready = std::mem::take(&mut self.ready);
            self.spill(&ready);
        }
    }

    /// Leaves rows to the spool (those not already recorded).
    pub(super) fn spill<'a>(&mut self, rows: impl IntoIterator<Item = &'a TransactionRow>) {
        for row in rows {
            let key = (row.tenant_id, row.request_id.clone());
            if self.backlog.contains(&key) {
                self.spilled.insert(key);
            }
        }
    }

    /// Deletes sealed segments none of whose rows waits any more, and empties the active
    /// segment when no row waits at all (both under the spool's lock: no append between
    /// the check and the change).
    async fn delete_done(&mut self) {
        self.undeleted.extend(self.backlog.take_done());
        let idle = self.backlog.rows() == 0 && self.backlog.bytes() >= self.config.compact_bytes;
        if self.undeleted.is_empty() && !idle {
            return;
        }
        let (spool, backlog, compact) = (self.spool.clone(), self.backlog.clone(), self.config.compact_bytes);
        let segments = std::mem::take(&mut self.undeleted);
        self.undeleted = tokio::task::spawn_blocking(move || {
            let mut spool = spool.lock().expect("spool lock");
            let mut failed = Vec::new();
            for segment in segments {
                if let Err(e) = spool.remove(segment) {
                    tracing::error!(error = %e, "cannot delete a spool segment already in Postgres");
                    failed.push(segment);
                }
            }
            if backlog.rows() == 0
                && spool.active_len() >= compact
                && let Err(e) = spool.clear()
            {
                tracing::error!(error = %e, "cannot empty the ledger spool (it is replayed idempotently)");
            }
            backlog.set_bytes(spool.len());
            failed
        })
        .await
        .expect("spool task");
    }
}
