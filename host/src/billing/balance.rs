//! Real-time prepaid balances in Redis: reserve, settle and credit as single atomic Lua
//! scripts keyed by request id (idempotent), rebuilt from Postgres when missing.
//!
//! Keys of one tenant share the hash tag `{tenant}` so every script touches one slot and
//! runs unchanged on Redis Cluster. `redis::Script` uses EVALSHA and reloads the script
//! on NOSCRIPT, so a flushed script cache is handled transparently.

use super::bill::IdOrigin;
use super::keys::KeySpace;
use super::lease::{LeaseTag, Leases};
use super::settle_batch::{FoundSettled, RESENT_EPOCH, SettleBatcher};
use crate::db::{RedisConn, RedisTarget};
use crate::ledger::PendingDebits;
use redis::Script;
use sqlx::PgPool;
use std::sync::{Arc, LazyLock, OnceLock};
use std::time::{Duration, SystemTime};
use tokio::sync::OnceCell;
use uuid::Uuid;

static RESERVE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/reserve.lua")));
/// `load.lua` with its prelude (the snapshot check it shares with `recount.lua`).
pub const LOAD_LUA: &str = concat!(include_str!("lua/snapshot.lua"), include_str!("lua/load.lua"));
static LOAD: LazyLock<Script> = LazyLock::new(|| Script::new(LOAD_LUA));
static CREDIT: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/credit.lua")));
pub(super) static SWEEP: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/sweep.lua")));
pub(super) static RENEW: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/renew.lua")));
pub(super) static RESYNC: LazyLock<Script> =
    LazyLock::new(|| Script::new(concat!(include_str!("lua/mark.lua"), include_str!("lua/resync.lua"))));
pub(super) static LEASE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/lease.lua")));
/// `lease_drop.lua` with its prelude (the rebuild mark, `lua/mark.lua`).
pub const LEASE_DROP_LUA: &str = concat!(include_str!("lua/mark.lua"), include_str!("lua/lease_drop.lua"));
pub(super) static LEASE_DROP: LazyLock<Script> = LazyLock::new(|| Script::new(LEASE_DROP_LUA));
pub(super) static LEFT_BEHIND: LazyLock<Script> =
    LazyLock::new(|| Script::new(concat!(include_str!("lua/mark.lua"), include_str!("lua/left_behind.lua"))));

/// Milliseconds since the epoch on this host (index scores; skew between gateways is
/// covered by the minute of slack in `Balances::forget_after`).
pub(super) fn now_ms() -> u64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// How often a gateway refreshes a tenant's entry in the hold index (see `holds.rs`): half
/// a hold TTL, at most 30 s (always well under `TTL + 60 s - sweep`).
pub(super) fn index_refresh(hold_ttl: Duration) -> Duration {
    (hold_ttl / 2).min(Duration::from_secs(30))
}

/// How long a finished request's state (its idempotency record) is kept in Redis when the
/// client chose the id: its retries must find it for a week (the ledger answers after that).
/// Sweeps and resyncs, which do not know who made the id, keep it as long.
pub(super) const REQUEST_STATE_TTL_SECS: u64 = 7 * 24 * 3600;
/// The same for an id the gateway made: only the settlement's own retries (seconds apart)
/// read it, and a client that sends such an id back later is checked against the ledger
/// (this gateway's spool, then Postgres). A week of them would be one key per request ever
/// served (600 million at 1 000 requests/s); an hour is 3.6 million.
pub(super) const GATEWAY_ID_STATE_TTL_SECS: u64 = 3600;

/// How long Redis keeps the state of a finished request whose id `origin` made.
pub(super) fn state_ttl_secs(origin: IdOrigin) -> u64 {
    match origin {
        IdOrigin::Client => REQUEST_STATE_TTL_SECS,
        IdOrigin::Gateway => GATEWAY_ID_STATE_TTL_SECS,
    }
}
/// How long a reservation refused while the account holds something waits before it asks
/// once more (a finished request's settlement releases its hold within a few milliseconds).
const SETTLING: Duration = Duration::from_millis(50);
/// How long credit markers are kept (a credit is applied right after its insert).
const CREDIT_MARKER_TTL_SECS: u64 = 24 * 3600;
/// Credits this recent are marked as counted when an account is loaded.
const RECENT_CREDIT_WINDOW: Duration = Duration::from_secs(3600);

/// Redis or Postgres failed; the request path fails closed on it (503).
#[derive(Debug, thiserror::Error)]
pub enum BalanceError {
    #[error("redis unavailable: {0}")]
    Redis(String),
    #[error("postgres unavailable while loading a balance: {0}")]
    Database(String),
}

impl From<redis::RedisError> for BalanceError {
    fn from(e: redis::RedisError) -> Self {
        BalanceError::Redis(e.to_string())
    }
}

/// What a reservation did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reservation {
    /// Held; `available_before` is what the tenant had before this hold. `lease`: held in
    /// this process from a lease (`lease.rs`), not in Redis.
    Reserved { available_before: i64, lease: Option<LeaseTag> },
    /// Not enough balance; nothing held.
    Insufficient { available: i64 },
    /// A request with this id is in flight.
    InProgress,
    /// A request with this id already finished.
    AlreadyDone,
}

/// What a settlement did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settlement {
    /// Debited now; `epoch` names the account's rebuild it was debited from (`load.lua`).
    Settled {
        available: i64,
        epoch: Option<std::sync::Arc<str>>,
    },
    AlreadySettled,
}

/// A tenant's live balance in Redis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct LiveBalance {
    pub loaded: bool,
    pub available_nano: i64,
    pub held_nano: i64,
}

/// The balance store.
pub struct Balances {
    pub(super) target: RedisTarget,
    conn: OnceCell<RedisConn>,
    /// Settlements go to Redis in batches (`settle_batch`), started on first use.
    settles: OnceLock<SettleBatcher>,
    pub(super) keys: KeySpace,
    /// Tenants this gateway put in the hold index recently (see `holds.rs`).
    pub(super) indexed: moka::sync::Cache<Uuid, ()>,
    db: PgPool,
    pub(super) pending: Arc<PendingDebits>,
    pub(super) hold_ttl: Duration,
    /// This process's balance leases (off unless [`with_leases`](Self::with_leases)).
    pub leases: Leases,
}

impl Balances {
    /// A store over `target` (connected on first use), keys under `keys`, that loads missing
    /// accounts from `db`.
    pub fn new(
        target: RedisTarget,
        keys: KeySpace,
        db: PgPool,
        pending: Arc<PendingDebits>,
        hold_ttl: Duration,
    ) -> Self {
        let indexed = moka::sync::Cache::builder().max_capacity(100_000).time_to_live(index_refresh(hold_ttl)).build();
        let leases = Leases::new(false);
        Balances {
            target,
            conn: OnceCell::new(),
            settles: OnceLock::new(),
            keys,
            indexed,
            db,
            pending,
            hold_ttl,
            leases,
        }
    }

    /// The same store, reserving gateway-made ids from balance leases when `on`
    /// (`[billing] leases`; the rounds that keep them run from [`Billing`](super::Billing)).
    pub fn with_leases(mut self, on: bool) -> Self {
        self.leases = Leases::new(on);
        self
    }

    pub(super) async fn conn(&self) -> Result<RedisConn, BalanceError> {
        Ok(self.conn.get_or_try_init(|| self.target.connect()).await?.clone())
    }

    /// The settlement batcher, started over the connection on first use.
    async fn settle_batcher(&self) -> Result<&SettleBatcher, BalanceError> {
        if let Some(batcher) = self.settles.get() {
            return Ok(batcher);
        }
        let conn = self.conn().await?;
        Ok(self.settles.get_or_init(|| SettleBatcher::spawn(conn, self.keys.clone())))
    }

    /// The key names this store uses.
    pub fn keys(&self) -> &KeySpace {
        &self.keys
    }

    /// Holds `amount` for `request_id`: from this process's lease of the tenant's balance
    /// when the gateway made the id and the lease has room (no round trip), else one round
    /// trip (the script, with the hold-index entry pipelined ahead of it when this gateway has
    /// not refreshed it lately). A client's id is checked for a request in flight or finished
    /// under it; a gateway-made one is new.
    pub async fn reserve(
        &self,
        tenant: Uuid,
        request_id: &str,
        origin: IdOrigin,
        amount: i64,
    ) -> Result<Reservation, BalanceError> {
        if origin == IdOrigin::Gateway
            && let Some((lease, available_before)) = self.leases.take(tenant, amount)
        {
            return Ok(Reservation::Reserved { available_before, lease: Some(lease) });
        }
        let k = self.keys.tenant(tenant);
        let rk = self.keys.request(tenant, request_id);
        let mut invocation = RESERVE.key(&k.account);
        invocation.key(&k.holds).key(&k.expiry).key(&rk).arg(request_id).arg(amount);
        invocation.arg(self.hold_ttl.as_millis() as u64).arg(u8::from(origin == IdOrigin::Client));
        let mut waited = false;
        for _ in 0..4 {
            let mut conn = self.conn().await?;
            let answer: redis::RedisResult<Vec<i64>> = self.index_then(tenant, &mut conn, &invocation).await;
            let (code, available, leases, held) = match answer.as_deref() {
                Ok([code, available]) => (*code, *available, 0, 0),
                Ok([code, available, leases, held]) => (*code, *available, *leases, *held),
                Ok(other) => return Err(BalanceError::Redis(format!("reserve.lua answered {other:?}"))),
                Err(e) if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) => {
                    invocation.load_async(&mut conn).await?;
                    continue;
                }
                Err(e) => return Err(BalanceError::Redis(e.to_string())),
            };
            if origin == IdOrigin::Gateway && (code == 0 || code == 1) {
                self.leases.observe(tenant, amount, available, code == 1);
            }
            // Refused while something is held, once more after a while rather than refuse what
            // the account may cover: a lease (this gateway's or another's) is given back by its
            // next round now that the account runs low; a request that just ended (a client's
            // previous one) releases its hold within its settlement's few milliseconds.
            if code == 0 && (leases > 0 || held > 0) && !waited {
                waited = true;
                let wait = if leases > 0 {
                    self.leases.refill.notify_one();
                    super::lease::EVERY * 3 / 2
                } else {
                    SETTLING
                };
                tokio::time::sleep(wait).await;
                continue;
            }
            return Ok(match code {
                1 => Reservation::Reserved { available_before: available + amount, lease: None },
                0 => Reservation::Insufficient { available },
                2 => Reservation::InProgress,
                3 => Reservation::AlreadyDone,
                _ => {
                    self.load(tenant).await?;
                    continue;
                }
            });
        }
        Err(BalanceError::Redis("account would not stay loaded".into()))
    }

    /// Debits `cost` for `request_id` and releases the rest of its hold, once (in the next
    /// settlement batch, `settle_batch`).
    /// `label` is `settled` or `released` (recorded in the request's state, kept as long as
    /// `state_ttl_secs` says for `origin`). A debit applied now is registered as pending
    /// until its row reaches Postgres, unless `recorded` says the row is already there (the
    /// sweeper settling from the ledger).
    pub async fn settle(
        &self,
        tenant: Uuid,
        request_id: &str,
        origin: IdOrigin,
        cost: i64,
        label: &str,
        recorded: bool,
    ) -> Result<Settlement, BalanceError> {
        self.settle_from(tenant, request_id, origin, cost, label, recorded, None, false).await
    }

    /// [`settle`](Self::settle) by the request's own settlement, which may be a resend of a
    /// try whose answer was lost (its row not recorded yet; a request's settlement sends every
    /// try this way, since the Redis client may resend a call on its own). Found settled, the
    /// debit is the lost try's: it is registered as pending
    /// and answered [`Settlement::Settled`] like a first settle, and when the account was
    /// rebuilt since that try, the rebuild may have missed it, so the account is marked for
    /// another (`settle.lua`).
    pub async fn settle_again(
        &self,
        tenant: Uuid,
        request_id: &str,
        origin: IdOrigin,
        cost: i64,
        label: &str,
    ) -> Result<Settlement, BalanceError> {
        self.settle_from(tenant, request_id, origin, cost, label, false, None, true).await
    }

    /// [`settle`](Self::settle) or, with `again`, [`settle_again`](Self::settle_again), for a
    /// request held from `lease` when it has one: the debit is then taken from the lease's
    /// hold (from `available` for what the hold lacks, or all of it when Redis lost the lease,
    /// which this process then gives up).
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn settle_from(
        &self,
        tenant: Uuid,
        request_id: &str,
        origin: IdOrigin,
        cost: i64,
        label: &str,
        recorded: bool,
        lease: Option<LeaseTag>,
        again: bool,
    ) -> Result<Settlement, BalanceError> {
        let ttl = state_ttl_secs(origin);
        let hold_id = lease.map(|l| self.leases.hold_id(l.0));
        for _ in 0..3 {
            let batcher = self.settle_batcher().await?;
            let lock = self.pending.lock(tenant).read().await;
            let answer = batcher
                .settle(tenant, request_id, cost.max(0), label, ttl, hold_id.clone(), again)
                .await
                .map_err(BalanceError::Redis)?;
            let found = FoundSettled::of(answer.code);
            if let (Some(lease), true) = (lease, answer.code == 3 || found.is_some_and(|f| f.lease_gone)) {
                self.leases.lose(tenant, lease.0);
            }
            // Found settled when sent again: the lost try's debit, accounted for as now.
            if matches!(answer.code, 1 | 3) || (again && found.is_some()) {
                if !recorded {
                    self.pending.add(tenant, cost.max(0));
                }
                // Debited by a lost try under an epoch a rebuild has replaced since: not
                // this account's (recount checks it against whichever rebuild it meets).
                let epoch = match found {
                    Some(FoundSettled { rebuilt: true, .. }) => Some(Arc::from(RESENT_EPOCH)),
                    _ => answer.epoch,
                };
                return Ok(Settlement::Settled { available: answer.available, epoch });
            }
            if found.is_some() {
                return Ok(Settlement::AlreadySettled);
            }
            drop(lock);
            self.load(tenant).await?;
        }
        Err(BalanceError::Redis("account would not stay loaded".into()))
    }

    /// Loads a tenant's account from Postgres: credits minus recorded debits minus this
    /// gateway's debits not yet recorded. A no-op when another gateway loaded it first.
    /// A row recorded while its hold is still open (a previous run's spool replayed before
    /// its hold was settled) is counted once: the open holds' ids are read first, and the
    /// load gives such a row's cost back, as settling its hold will debit it. The account's
    /// generation, read before both, makes a load whose snapshot a rebuild mark overtook
    /// (another gateway's resync or left-behind rows) start again. This process's leases that
    /// Redis lost (a flush) are held again: their money is still being spent here.
    pub async fn load(&self, tenant: Uuid) -> Result<(), BalanceError> {
        let db_err = |e: sqlx::Error| BalanceError::Database(e.to_string());
        let _exclusive = self.pending.lock(tenant).write().await;
        let k = self.keys.tenant(tenant);
        let mut conn = self.conn().await?;
        for _ in 0..3 {
            let gen_: Option<String> = redis::cmd("HGET").arg(&k.account).arg("gen").query_async(&mut conn).await?;
            // While the account is not loaded no hold is taken or settled; one may go.
            let held: Vec<String> = redis::cmd("HKEYS").arg(&k.holds).query_async(&mut conn).await?;
            let snapshot = crate::ledger::lookup::balance_for_load(&self.db, tenant, RECENT_CREDIT_WINDOW, &held)
                .await
                .map_err(db_err)?;
            let balance = snapshot.balance_nano - self.pending.get(tenant);
            let leases = self.leases.outstanding(tenant);
            let mut invocation = LOAD.key(&k.account);
            invocation.key(&k.holds).key(&k.expiry);
            for id in &snapshot.recent_credits {
                invocation.key(self.keys.credit(tenant, id));
            }
            invocation.arg(balance).arg(CREDIT_MARKER_TTL_SECS).arg(gen_.unwrap_or_default());
            invocation.arg(super::lease::ttl(self.hold_ttl).as_millis() as u64).arg(leases.len());
            invocation.arg(self.leases.replica().to_string()).arg(&snapshot.pg_snapshot);
            for (id, amount, seq) in &leases {
                invocation.arg(id).arg(*amount).arg(*seq);
            }
            for (id, cost) in &snapshot.recorded_under_holds {
                invocation.arg(id).arg(*cost);
            }
            let loaded: i64 = invocation.invoke_async(&mut conn).await?;
            if loaded == -1 {
                continue;
            }
            // A rebuilt account may come from a flushed or failed-over Redis: index the tenant again.
            self.indexed.invalidate(&tenant);
            if loaded == 1 {
                metrics::counter!("xjp_balance_loads_total").increment(1);
                tracing::info!(%tenant, balance_nano = balance, "tenant balance loaded from Postgres");
            }
            return Ok(());
        }
        Err(BalanceError::Redis("the account kept being marked for a rebuild while loading".into()))
    }

    /// Applies a credit recorded in Postgres to the live balance, once: a credit already
    /// applied (or counted by a load) is not applied again. An account not loaded yet is
    /// loaded first (the load counts the credit, or the retry applies it), so a credit racing
    /// a load is never lost. Returns whether this call applied it.
    pub async fn credit(&self, tenant: Uuid, credit_id: &str, amount: i64) -> Result<bool, BalanceError> {
        for _ in 0..3 {
            let mut conn = self.conn().await?;
            let code: i64 = CREDIT
                .key(self.keys.tenant(tenant).account)
                .key(self.keys.credit(tenant, credit_id))
                .arg(amount)
                .arg(CREDIT_MARKER_TTL_SECS)
                .invoke_async(&mut conn)
                .await?;
            match code {
                1 => return Ok(true),
                0 => return Ok(false),
                _ => self.load(tenant).await?,
            }
        }
        Err(BalanceError::Redis("account would not stay loaded".into()))
    }

    /// How long a credit stays marked as applied: a retry older than this cannot tell
    /// whether it was applied, and is left to the next rebuild.
    pub fn credit_marker_ttl() -> Duration {
        Duration::from_secs(CREDIT_MARKER_TTL_SECS)
    }

    /// The live balance (without loading it).
    pub async fn live(&self, tenant: Uuid) -> Result<LiveBalance, BalanceError> {
        let mut conn = self.conn().await?;
        let (loaded, available, held): (Option<String>, Option<i64>, Option<i64>) = redis::cmd("HMGET")
            .arg(self.keys.tenant(tenant).account)
            .arg("loaded")
            .arg("available")
            .arg("held")
            .query_async(&mut conn)
            .await?;
        Ok(LiveBalance {
            loaded: loaded.as_deref() == Some("1"),
            available_nano: available.unwrap_or(0),
            held_nano: held.unwrap_or(0),
        })
    }

    /// The hold TTL.
    pub fn hold_ttl(&self) -> Duration {
        self.hold_ttl
    }

    /// Redis answers.
    pub async fn ping(&self) -> bool {
        match self.conn().await {
            Ok(mut c) => redis::cmd("PING").query_async::<String>(&mut c).await.is_ok(),
            Err(_) => false,
        }
    }
}
