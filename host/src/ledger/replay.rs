//! Replaying the spool: the confirmed rows that wait only in the spool (Postgres was down,
//! slower than the load, or the process stopped) are read back from where the backlog says
//! each frame is (the segment is read whole, only those frames are decoded) and inserted, in
//! passes until none is left. Rows confirmed meanwhile join the next pass; a replay stops at
//! an outage and is retried every `retry_interval`.

use super::bounds::bound_row;
use super::inserter::Inserter;
use super::row::TransactionRow;
use super::spool::read_frames_at;
use std::time::Instant;

impl Inserter {
    /// Inserts every spilled row it finds in the spool.
    pub(super) async fn replay(&mut self) {
        if self.outage.is_some() && sqlx::query("SELECT 1").execute(&self.db).await.is_err() {
            self.outage = Some(Instant::now());
            return;
        }
        let started = (Instant::now(), self.spilled.len());
        loop {
            // Rows recorded meanwhile (a dead letter, a duplicate) need no replay.
            let backlog = self.backlog.clone();
            self.spilled.retain(|k| backlog.contains(k));
            let places = self.backlog.places_of(&self.spilled);
            if places.is_empty() {
                break;
            }
            let mut found = 0;
            for (segment, starts) in places {
                let (spool, dir) = (self.spool.clone(), self.config.spool_dir.clone());
                let rows = tokio::task::spawn_blocking(move || {
                    let mut file = spool.lock().expect("spool lock").readers(&[segment])?.pop();
                    file.as_mut().map_or(Ok(Vec::new()), |f| read_frames_at(f, &dir, &starts))
                })
                .await
                .expect("spool task");
                let rows = match rows {
                    Ok(rows) => rows,
                    Err(e) => {
                        tracing::error!(error = %e, "cannot read the ledger spool");
                        continue;
                    }
                };
                // Rows are bounded again: a spool written by an older version may hold
                // longer ones. A row spooled twice is inserted once.
                let rows: Vec<TransactionRow> = rows
                    .into_iter()
                    .map(bound_row)
                    .filter(|r| self.spilled.remove(&(r.tenant_id, r.request_id.clone())))
                    .collect();
                found += rows.len();
                if !self.insert_chunks(&rows).await {
                    return;
                }
            }
            if found == 0 {
                // Nothing of what waits was found: reading again would not find it either.
                metrics::counter!("xjp_ledger_spool_errors_total").increment(1);
                tracing::error!(rows = self.spilled.len(), "confirmed rows missing from the ledger spool");
                self.spilled.clear();
            }
        }
        self.outage = None;
        metrics::counter!("xjp_ledger_replays_total").increment(1);
        let (at, rows) = started;
        tracing::info!(rows, secs = at.elapsed().as_secs_f64(), "ledger spool replayed into postgres");
    }

    /// Inserts rows in batches (`inserters` at once), taking the spool stage's messages
    /// between them. False on an outage (what was not inserted waits in the spool again).
    async fn insert_chunks(&mut self, rows: &[TransactionRow]) -> bool {
        let batch = self.config.max_batch.max(1);
        let step = batch * self.config.inserters.max(1);
        for (i, group) in rows.chunks(step).enumerate() {
            let batches: Vec<&[TransactionRow]> = group.chunks(batch).collect();
            let results = self.insert_concurrently(&batches).await;
            if let Some(Err(e)) = results.iter().find(|r| r.is_err()) {
                tracing::debug!(error = %e, "postgres still unavailable");
                self.outage = Some(Instant::now());
                let failed: Vec<&TransactionRow> =
                    batches.iter().zip(&results).filter(|(_, r)| r.is_err()).flat_map(|(b, _)| b.iter()).collect();
                let rest = &rows[((i + 1) * step).min(rows.len())..];
                self.spill(failed.into_iter().chain(rest));
                return false;
            }
            self.take_queued();
        }
        true
    }
}
