//! The writer's commit step: rows into Postgres under the tenants' shared locks (so a
//! balance load sees each debit exactly once), and a refused batch split until the refused
//! rows are alone and set aside.

use super::dead_letter;
use super::insert::{insert_batch, insert_rows};
use super::inserter::Inserter;
use super::recount::{Committed, Debit};
use super::refusal::{Failure, blames_the_database, classify, sqlstate};
use super::row::TransactionRow;
use super::stages::RowKey;
use std::collections::HashMap;

impl Inserter {
    /// Inserts rows. A batch Postgres refuses (a value, not an outage: `ledger::refusal`) is
    /// halved until each refused row is alone; every other row is inserted and each refused
    /// one is set aside ([`dead_letter`](Self::dead_letter)). Fails only on an outage: what
    /// was inserted before it stays, the rest is retried from the spool.
    pub(super) async fn insert_all(&self, rows: &[TransactionRow]) -> Result<(), sqlx::Error> {
        let mut todo = vec![rows];
        while let Some(part) = todo.pop() {
            let Err(e) = self.insert_locked(part).await else { continue };
            match (classify(&e), part) {
                (Failure::Outage, _) => return Err(e),
                (Failure::Refusal, [row]) => self.dead_letter(row, e).await?,
                (Failure::Refusal, _) => {
                    let (first, second) = part.split_at(part.len() / 2);
                    todo.extend([second, first]);
                }
            }
        }
        Ok(())
    }

    /// Inserts up to `inserters` batches at once, each on its own connection (each one
    /// statement, as [`insert_all`](Self::insert_all)); a result per batch.
    pub(super) async fn insert_concurrently(&self, batches: &[&[TransactionRow]]) -> Vec<Result<(), sqlx::Error>> {
        futures_util::future::join_all(batches.iter().map(|b| self.insert_all(b))).await
    }

    /// Sets aside a row Postgres refused: a placeholder (its money, `needs_review`, no client
    /// text) goes to `billing_transactions`, the row itself to `ledger_dead_letters`. Its
    /// debit then stops being pending, as on commit, under the tenant's shared lock.
    ///
    /// What a balance rebuilt from Postgres then sees: with the placeholder, the cost among
    /// the recorded debits, as for any row. Without it (Postgres refused even the
    /// placeholder: dead letter only, `placeholder = false`), the debit is in no table the
    /// rebuild reads, so a tenant whose Redis account is rebuilt gets that money back until
    /// an operator records it from the dead letter. Keeping it pending instead would hold it
    /// against the balance only until this process exits.
    ///
    /// Fails as an outage when Postgres is unavailable, or when the placeholder meets the
    /// same refusal (then the database refuses every row, not this one).
    async fn dead_letter(&self, row: &TransactionRow, error: sqlx::Error) -> Result<(), sqlx::Error> {
        let pending = self.pending.clone();
        let _shared = pending.lock(row.tenant_id).read().await;
        let key = (row.tenant_id, row.request_id.clone());
        let substitute = dead_letter::placeholder(row, &error);
        let kept = match insert_batch(&self.db, std::slice::from_ref(&substitute)).await {
            Ok(inserted) => {
                metrics::counter!("xjp_ledger_rows_written_total").increment(inserted);
                self.settle_pending(&key);
                true
            }
            Err(e) if classify(&e) == Failure::Outage || blames_the_database(&error, &e) => return Err(e),
            Err(e) => {
                tracing::error!(error = %dead_letter::error_text(&e), "postgres refused a dead-lettered row's placeholder too");
                false
            }
        };
        let new = dead_letter::store(&self.db, row, &error, kept).await?;
        self.settle_pending(&key);
        self.backlog.recorded([&key]);
        if new {
            metrics::counter!("xjp_ledger_dead_letters_total", "placeholder" => kept.to_string()).increment(1);
            tracing::error!(
                tenant = %row.tenant_id,
                request_id = ?dead_letter::sanitize(&row.request_id),
                sqlstate = sqlstate(&error).as_deref().unwrap_or("none"),
                error = %dead_letter::error_text(&error),
                cost_nano = row.cost_nano,
                placeholder = kept,
                "postgres refused a ledger row; it is in ledger_dead_letters"
            );
        }
        Ok(())
    }

    /// The row's debit is recorded (or set aside for good): it is no longer pending.
    fn settle_pending(&self, key: &RowKey) -> Option<Debit> {
        let debit = self.uncommitted.lock().remove(key);
        if let Some(debit) = &debit {
            self.pending.recorded(key.0, debit.cost);
        }
        debit
    }

    /// Inserts rows and un-registers their pending debits while holding the shared lock of
    /// every tenant involved, so a balance load sees each debit exactly once.
    pub(super) async fn insert_locked(&self, rows: &[TransactionRow]) -> Result<u64, sqlx::Error> {
        let pending = self.pending.clone();
        let mut shards: Vec<&tokio::sync::RwLock<()>> = Vec::new();
        for row in rows {
            let lock = pending.lock(row.tenant_id);
            if !shards.iter().any(|l| std::ptr::eq(*l, lock)) {
                shards.push(lock);
            }
        }
        // A fixed order (by address) so two writers never wait on each other in a cycle.
        shards.sort_by_key(|l| *l as *const _ as usize);
        let mut guards = Vec::with_capacity(shards.len());
        for lock in shards {
            guards.push(lock.read().await);
        }
        let (inserted, xid) = insert_rows(&self.db, rows).await?;
        self.committed(rows, inserted, xid);
        Ok(inserted)
    }

    /// The rows are in Postgres: their debits stop being pending, and those applied under
    /// an account epoch go to billing with the transaction that committed them.
    fn committed(&self, rows: &[TransactionRow], inserted: u64, xid: String) {
        metrics::counter!("xjp_ledger_rows_written_total").increment(inserted);
        metrics::counter!("xjp_ledger_duplicates_total").increment(rows.len() as u64 - inserted.min(rows.len() as u64));
        let keys: Vec<RowKey> = rows.iter().map(|r| (r.tenant_id, r.request_id.clone())).collect();
        let mut debits: HashMap<uuid::Uuid, Vec<Debit>> = HashMap::new();
        for key in &keys {
            if let Some(debit) = self.settle_pending(key).filter(|d| d.epoch.is_some()) {
                debits.entry(key.0).or_default().push(debit);
            }
        }
        let all_new = inserted == rows.len() as u64;
        for (tenant, debits) in debits {
            self.commits.send(Committed { tenant, xid: xid.clone(), debits, all_new });
        }
        self.backlog.recorded(&keys);
    }
}
