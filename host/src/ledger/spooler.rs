//! The spool stage: takes rows and confirmations off the queue in batches, makes each batch
//! of rows durable (one append, one fsync), hands it to the insert stage, then acknowledges
//! it. Confirmations follow the rows they confirm through the same channel, in order. It
//! never waits for Postgres.

use super::backlog::Backlog;
use super::frames::encode;
use super::inserter::Stage;
use super::row::TransactionRow;
use super::spool::SpoolError;
use super::stages::{LedgerConfig, RowKey, SharedSpool, Submit};
use super::unrecorded::Place;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

/// Runs until the queue is closed and empty; the insert stage ends after it.
pub(super) async fn run(
    spool: SharedSpool,
    backlog: Arc<Backlog>,
    config: LedgerConfig,
    mut rx: mpsc::Receiver<Submit>,
    out: mpsc::UnboundedSender<Stage>,
) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        let deadline = tokio::time::Instant::now() + config.batch_window;
        while batch.len() < config.max_batch {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(s)) => batch.push(s),
                _ => break,
            }
        }
        let mut rows = Vec::new();
        let mut acks: Vec<oneshot::Sender<()>> = Vec::new();
        let mut confirms = Vec::new();
        for msg in batch {
            match msg {
                Submit::Record { row, durable } => {
                    rows.push(*row);
                    acks.push(durable);
                }
                Submit::Confirm { key, debit } => confirms.push(Stage::Confirm { key, debit }),
            }
        }
        if !rows.is_empty() {
            let rows = append(&spool, &backlog, &config, rows).await;
            // Handed on before the acknowledgements: a confirmation (sent after one) then
            // always reaches the insert stage after its row.
            let _ = out.send(Stage::Spooled(rows));
            for ack in acks {
                let _ = ack.send(());
            }
        }
        for confirm in confirms {
            let _ = out.send(confirm);
        }
        metrics::gauge!("xjp_ledger_queue_depth").set(rx.len() as f64);
    }
}

/// Appends `rows` durably, retrying until the disk takes them (errors are counted and
/// logged); returns them for the insert stage.
async fn append(
    spool: &SharedSpool,
    backlog: &Arc<Backlog>,
    config: &LedgerConfig,
    rows: Vec<TransactionRow>,
) -> Vec<TransactionRow> {
    let mut rows = rows;
    loop {
        let (spool, backlog, segment_bytes) = (spool.clone(), backlog.clone(), config.segment_bytes);
        let (back, appended) = tokio::task::spawn_blocking(move || {
            let appended = append_blocking(&spool, &backlog, segment_bytes, &rows);
            (rows, appended)
        })
        .await
        .expect("spool task");
        rows = back;
        match appended {
            Ok(()) => return rows,
            Err(e) => {
                metrics::counter!("xjp_ledger_spool_errors_total").increment(1);
                tracing::error!(error = %e, "cannot write the ledger spool; retrying");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

/// Encodes, seals a full active segment, appends and fsyncs; the rows are in the backlog
/// before the spool's lock is released (so nothing can clear them from the spool unseen).
fn append_blocking(
    spool: &SharedSpool,
    backlog: &Backlog,
    segment_bytes: u64,
    rows: &[TransactionRow],
) -> Result<(), SpoolError> {
    let (frames, starts) = encode(rows)?;
    let keys: Vec<RowKey> = rows.iter().map(|r| (r.tenant_id, r.request_id.clone())).collect();
    let mut spool = spool.lock().expect("spool lock");
    if spool.active_len() >= segment_bytes {
        let sealed = spool.seal()?;
        if backlog.sealed(sealed)
            && let Err(e) = spool.remove(sealed)
        {
            tracing::error!(error = %e, "cannot delete a spooled segment already in Postgres (replayed idempotently)");
        }
    }
    let (segment, base) = (spool.active_segment(), spool.active_len());
    spool.append_encoded(&frames)?;
    let places = starts.iter().map(|start| Place { segment, offset: base + start });
    backlog.spooled(keys.iter().zip(places), Instant::now());
    backlog.set_bytes(spool.len());
    Ok(())
}
