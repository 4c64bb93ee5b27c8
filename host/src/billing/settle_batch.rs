//! Settlements go to Redis in batches: one task takes every settlement queued while the
//! previous batch was in flight and sends one `settle.lua` call per tenant (its keys share
//! one hash slot), all pipelined on the one connection. A lone settlement goes at once; under
//! load a batch grows with the queue, so the number of Redis calls (and the client's and
//! Redis's per-call work) falls as the rate rises. Settling is off the response path; the
//! request waits for nothing here.

use super::keys::KeySpace;
use crate::db::RedisConn;
use redis::Script;
use std::collections::HashMap;
use std::sync::{Arc, LazyLock};
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

/// `settle.lua` with its prelude (the rebuild mark, for a resent settlement that a rebuild
/// may have missed).
pub const SETTLE_LUA: &str = concat!(include_str!("lua/mark.lua"), include_str!("lua/settle.lua"));
static SETTLE: LazyLock<Script> = LazyLock::new(|| Script::new(SETTLE_LUA));

/// Settlements of one tenant per script call at most (a call blocks Redis while it runs:
/// up to 6 commands per settlement with its own hold, 2 per leased one and 3 per lease).
pub const MAX_PER_CALL: usize = 128;

/// The epoch a debit is reported under when a lost try applied it before a rebuild it may
/// have escaped (never a real epoch, which is `<gateway>@<time>`): `recount.lua` counts it
/// unless the account's rebuild saw its row.
pub const RESENT_EPOCH: &str = "resent";

/// `settle.lua`'s answer for a request it found settled already (codes 2, 4, 6, 8): for a
/// settlement sent again, whether its lease is gone and whether the account was rebuilt
/// since the lost try (and is marked now).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FoundSettled {
    pub lease_gone: bool,
    pub rebuilt: bool,
}

impl FoundSettled {
    /// Decodes a settlement's code; `None` for any other answer.
    pub fn of(code: i64) -> Option<FoundSettled> {
        let flags = code - 2;
        ((0..=6).contains(&flags) && flags % 2 == 0)
            .then_some(FoundSettled { lease_gone: flags & 2 != 0, rebuilt: flags & 4 != 0 })
    }
}

/// What the script answered for one settlement, or the call's error.
type Answer = Result<Settled, String>;

/// One settlement's answer: `settle.lua`'s code, the account's `available` after it, and the
/// account's epoch (who rebuilt it, `load.lua`; `None` for an account loaded before epochs).
#[derive(Debug, Clone)]
pub struct Settled {
    pub code: i64,
    pub available: i64,
    pub epoch: Option<Arc<str>>,
}

/// One settlement waiting for its batch.
#[derive(Debug)]
struct Job {
    tenant: Uuid,
    request_id: String,
    cost: i64,
    label: String,
    /// How long the request's state is kept (s).
    state_ttl: u64,
    /// The lease it was held from, if any.
    lease: Option<String>,
    /// Sent again after a try whose answer was lost.
    again: bool,
    reply: oneshot::Sender<Answer>,
}

/// The queue into the batching task (which ends when this is dropped).
#[derive(Debug, Clone)]
pub struct SettleBatcher {
    tx: mpsc::UnboundedSender<Job>,
}

impl SettleBatcher {
    /// Starts the batching task over `conn` (call inside the runtime).
    pub fn spawn(conn: RedisConn, keys: KeySpace) -> SettleBatcher {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(rx, conn, keys));
        SettleBatcher { tx }
    }

    /// Settles one request in the next batch, as `settle.lua` answers.
    /// The request's state is kept `state_ttl` seconds; `lease` is the hold id of the lease
    /// it was held from; `again` says an earlier try's answer was lost.
    #[allow(clippy::too_many_arguments)]
    pub async fn settle(
        &self,
        tenant: Uuid,
        request_id: &str,
        cost: i64,
        label: &str,
        state_ttl: u64,
        lease: Option<String>,
        again: bool,
    ) -> Answer {
        let (reply, answer) = oneshot::channel();
        let (request_id, label) = (request_id.to_string(), label.to_string());
        let job = Job { tenant, request_id, cost, label, state_ttl, lease, again, reply };
        self.tx.send(job).map_err(|_| "the settlement queue is closed".to_string())?;
        answer.await.map_err(|_| "the settlement batch was dropped".to_string())?
    }
}

/// Takes what is queued, settles it (one call per tenant, concurrently), and again.
async fn run(mut rx: mpsc::UnboundedReceiver<Job>, conn: RedisConn, keys: KeySpace) {
    while let Some(first) = rx.recv().await {
        // Per tenant, its groups in order; a group is full at MAX_PER_CALL.
        let mut groups: Vec<Vec<Job>> = Vec::new();
        let mut open: HashMap<Uuid, usize> = HashMap::new();
        let mut add = |job: Job| match open.get(&job.tenant) {
            Some(&g) if groups[g].len() < MAX_PER_CALL => groups[g].push(job),
            _ => {
                open.insert(job.tenant, groups.len());
                groups.push(vec![job]);
            }
        };
        add(first);
        let mut taken = 1;
        while taken < MAX_PER_CALL * 8
            && let Ok(job) = rx.try_recv()
        {
            add(job);
            taken += 1;
        }
        metrics::histogram!("xjp_settle_batch_size").record(taken as f64);
        let calls = groups.into_iter().map(|jobs| call(conn.clone(), &keys, jobs));
        futures_util::future::join_all(calls).await;
    }
}

/// One script call for one tenant's settlements; answers each.
async fn call(mut conn: RedisConn, keys: &KeySpace, jobs: Vec<Job>) {
    let tenant = jobs[0].tenant;
    let k = keys.tenant(tenant);
    let mut invocation = SETTLE.key(&k.account);
    invocation.key(&k.holds).key(&k.expiry);
    for job in &jobs {
        invocation.key(keys.request(tenant, &job.request_id));
        invocation.arg(&job.request_id).arg(job.cost.max(0));
        match job.again {
            true => invocation.arg(format!("+{}", job.label)),
            false => invocation.arg(&job.label),
        };
        invocation.arg(job.state_ttl);
        invocation.arg(job.lease.as_deref().unwrap_or(""));
    }
    let answered: Result<Vec<redis::Value>, _> = invocation.invoke_async(&mut conn).await;
    match answered.map(|values| parse(&values, jobs.len())) {
        Ok(Some((codes, epoch))) => {
            for (job, pair) in jobs.into_iter().zip(codes.chunks(2)) {
                let settled = Settled { code: pair[0], available: pair[1], epoch: epoch.clone() };
                let _ = job.reply.send(Ok(settled));
            }
        }
        Ok(None) => {
            let e = format!("settle.lua's answer does not fit {} settlements", jobs.len());
            jobs.into_iter().for_each(|job| drop(job.reply.send(Err(e.clone()))));
        }
        Err(e) => {
            let e = e.to_string();
            jobs.into_iter().for_each(|job| drop(job.reply.send(Err(e.clone()))));
        }
    }
}

/// `settle.lua`'s answer: a (code, available) pair per settlement, then the epoch.
fn parse(values: &[redis::Value], settlements: usize) -> Option<(Vec<i64>, Option<Arc<str>>)> {
    let (epoch, pairs) = values.split_last()?;
    if pairs.len() != settlements * 2 {
        return None;
    }
    let codes = pairs.iter().map(|v| redis::from_redis_value_ref::<i64>(v).ok()).collect::<Option<Vec<_>>>()?;
    let epoch: String = redis::from_redis_value_ref(epoch).ok()?;
    Some((codes, (!epoch.is_empty()).then(|| Arc::from(epoch))))
}
