//! Settlements go to Redis in batches: one task takes every settlement queued while the
//! previous batch was in flight and sends one `settle.lua` call per tenant (its keys share
//! one hash slot), all pipelined on the one connection. A lone settlement goes at once; under
//! load a batch grows with the queue, so the number of Redis calls (and the client's and
//! Redis's per-call work) falls as the rate rises. Settling is off the response path; the
//! request waits for nothing here.
//!
//! A call that fails is sent again as it was (the same call key), so a
//! call applied whose answer was lost is not applied twice: leased requests whose id the
//! gateway made keep no state key of their own (one key per request served, kept an hour,
//! was most of Redis's memory and work at high rates); the call's key stands for them.

use super::balance::GATEWAY_ID_STATE_TTL_SECS;
use super::keys::KeySpace;
use crate::db::RedisConn;
use redis::Script;
use std::collections::HashMap;
use std::sync::{Arc, LazyLock};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

static SETTLE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/settle.lua")));

/// Settlements of one tenant per script call at most (a call blocks Redis while it runs:
/// up to 6 commands per settlement with its own hold, 2 per leased one and 3 per lease).
pub const MAX_PER_CALL: usize = 128;

/// How long a call's key is kept (s): as long as a gateway-made id's state
/// ([`GATEWAY_ID_STATE_TTL_SECS`]), which it stands for.
const CALL_KEY_TTL_SECS: u64 = GATEWAY_ID_STATE_TTL_SECS;
/// Waits before each try of a call (four tries in ~1 s; while they last, the next batch waits).
const RETRY_DELAYS_MS: [u64; 4] = [0, 50, 200, 800];

/// What the script answered for one settlement, or why the call failed.
type Answer = Result<Settled, Unsettled>;

/// A settlement whose call failed, every try: `call` is the key that says whether the call was
/// applied after all (what a resync of a settlement without state of its own checks).
#[derive(Debug, Clone)]
pub struct Unsettled {
    pub error: String,
    pub call: String,
}

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
    /// It keeps no state of its own (a leased request whose id the gateway made).
    stateless: bool,
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
        tokio::spawn(run(rx, conn, keys, Uuid::new_v4()));
        SettleBatcher { tx }
    }

    /// Settles one request in the next batch, as `settle.lua` answers.
    /// The request's state is kept `state_ttl` seconds, or not at all when `stateless`;
    /// `lease` is the hold id of the lease it was held from.
    #[allow(clippy::too_many_arguments)]
    pub async fn settle(
        &self,
        tenant: Uuid,
        request_id: &str,
        cost: i64,
        label: &str,
        state_ttl: u64,
        lease: Option<String>,
        stateless: bool,
    ) -> Answer {
        let (reply, answer) = oneshot::channel();
        let (request_id, label) = (request_id.to_string(), label.to_string());
        let job = Job { tenant, request_id, cost, label, state_ttl, lease, stateless, reply };
        let lost = |error: &str| Unsettled { error: error.to_string(), call: String::new() };
        self.tx.send(job).map_err(|_| lost("the settlement queue is closed"))?;
        answer.await.map_err(|_| lost("the settlement batch was dropped"))?
    }
}

/// Takes what is queued, settles it (one call per tenant, concurrently), and again. Call keys
/// are `<instance>-<n>`: unique to this task.
async fn run(mut rx: mpsc::UnboundedReceiver<Job>, conn: RedisConn, keys: KeySpace, instance: Uuid) {
    let mut calls_made = 0u64;
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
        let calls = groups.into_iter().map(|jobs| {
            calls_made += 1;
            let call_key = keys.settle_call(jobs[0].tenant, &format!("{}-{calls_made}", instance.simple()));
            call(conn.clone(), &keys, jobs, call_key)
        });
        futures_util::future::join_all(calls).await;
    }
}

/// One script call for one tenant's settlements, sent again as it was after an error;
/// answers each.
async fn call(mut conn: RedisConn, keys: &KeySpace, jobs: Vec<Job>, call_key: String) {
    let tenant = jobs[0].tenant;
    let k = keys.tenant(tenant);
    let mut invocation = SETTLE.key(&k.account);
    invocation.key(&k.holds).key(&k.expiry).key(&call_key).arg(CALL_KEY_TTL_SECS);
    for job in &jobs {
        // A request without state: its key is not read; the call's stands in its place.
        invocation.key(if job.stateless { call_key.clone() } else { keys.request(tenant, &job.request_id) });
        invocation.arg(&job.request_id).arg(job.cost.max(0)).arg(&job.label).arg(job.state_ttl);
        invocation.arg(job.lease.as_deref().unwrap_or("")).arg(if job.stateless { "1" } else { "0" });
    }
    let mut answered: Result<Vec<redis::Value>, redis::RedisError> = Ok(Vec::new());
    for delay in RETRY_DELAYS_MS {
        tokio::time::sleep(Duration::from_millis(delay)).await;
        answered = invocation.invoke_async(&mut conn).await;
        if answered.is_ok() {
            break;
        }
    }
    let failed = |error: String| Unsettled { error, call: call_key.clone() };
    match answered.map(|values| parse(&values, jobs.len())) {
        Ok(Some((codes, epoch))) => {
            for (job, pair) in jobs.into_iter().zip(codes.chunks(2)) {
                let settled = Settled { code: pair[0], available: pair[1], epoch: epoch.clone() };
                let _ = job.reply.send(Ok(settled));
            }
        }
        Ok(None) => {
            let e = format!("settle.lua's answer does not fit {} settlements", jobs.len());
            jobs.into_iter().for_each(|job| drop(job.reply.send(Err(failed(e.clone())))));
        }
        Err(e) => {
            let e = e.to_string();
            jobs.into_iter().for_each(|job| drop(job.reply.send(Err(failed(e.clone())))));
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
