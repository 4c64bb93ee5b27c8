//! A gateway that died with rows in its spool: once the restarted gateway has replayed them
//! into Postgres, each one's debit counts once in Redis, whatever happened to it while the
//! gateway was down (settled and then lost by another gateway's rebuild, hold still open,
//! released by the sweeper, state forgotten by Redis); and a balance rebuilt while a recorded
//! row's hold is still open counts it once.

use crate::common;

use super::ledger_robustness::{database, row};
use common::harness::TestDb;
use common::services::PrivateRedis;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;
use xjp_gateway::billing::left_behind::LeftBehindRows;
use xjp_gateway::billing::sweeper::sweep_once;
use xjp_gateway::billing::{Balances, IdOrigin, KeySpace, Reservation};
use xjp_gateway::db::RedisTarget;
use xjp_gateway::db::credits::{self, CreditKind};
use xjp_gateway::ledger::{Ledger, LedgerConfig, PendingDebits, TransactionRow, lookup};

const CREDIT: i64 = 1_000_000_000;
const HOLD: i64 = 5_000_000;

fn balances(redis: &PrivateRedis, db: &sqlx::PgPool, pending: &Arc<PendingDebits>, ttl: Duration) -> Balances {
    let target = RedisTarget::single(&redis.url(), None, None).unwrap();
    Balances::new(target, KeySpace::new("left"), db.clone(), pending.clone(), ttl)
}

async fn ledger(db: &sqlx::PgPool, spool: &std::path::Path, pending: &Arc<PendingDebits>) -> Ledger {
    let mut config = LedgerConfig::new(spool.to_path_buf());
    config.batch_window = Duration::from_millis(20);
    config.retry_interval = Duration::from_millis(100);
    Ledger::start(db.clone(), config, pending.clone()).await.unwrap()
}

async fn hold(balances: &Balances, tenant: Uuid, id: &str) {
    let reserved = balances.reserve(tenant, id, IdOrigin::Gateway, HOLD).await.unwrap();
    assert!(matches!(reserved, Reservation::Reserved { .. }), "{reserved:?}");
}

/// A tenant with credit on a private Redis and its own database, and the spool of a gateway
/// run that dies with Postgres unreachable from it (so its rows stay in the spool).
struct World {
    redis: PrivateRedis,
    _db: TestDb,
    pool: sqlx::PgPool,
    tenant: Uuid,
    key: Uuid,
    spool: tempfile::TempDir,
    unreachable: sqlx::PgPool,
}

impl World {
    async fn new() -> World {
        let redis = tokio::task::spawn_blocking(PrivateRedis::start).await.unwrap();
        let db = TestDb::create().await;
        let (pool, tenant, key) = database(&db.url).await;
        credits::insert(&pool, tenant, "start", CreditKind::TopUp, CREDIT, None).await.unwrap();
        let unreachable = xjp_gateway::db::connect_lazy("postgres://postgres@127.0.0.1:1/none", 1).unwrap();
        World { redis, _db: db, pool, tenant, key, spool: tempfile::tempdir().unwrap(), unreachable }
    }

    /// The balance store of a run with `pending` (a new process has nothing pending).
    fn balances(&self, pending: &Arc<PendingDebits>, ttl: Duration) -> Balances {
        balances(&self.redis, &self.pool, pending, ttl)
    }

    /// A run (with `pending`) that holds for a row of `cost`, spools the row while Postgres is
    /// unreachable from it, settles it in Redis when `settle` says so, and dies.
    async fn dies_after_spooling(
        &self,
        balances: &Balances,
        pending: &Arc<PendingDebits>,
        cost: i64,
        settle: bool,
    ) -> TransactionRow {
        let dying = ledger(&self.unreachable, self.spool.path(), pending).await;
        let r = row(self.tenant, self.key, cost);
        hold(balances, self.tenant, &r.request_id).await;
        dying.record(r.clone()).await.unwrap();
        if settle {
            balances.settle(self.tenant, &r.request_id, IdOrigin::Gateway, cost, "settled", false).await.unwrap();
        }
        dying.shutdown().await;
        r
    }

    /// After the hold TTL, another gateway's sweeper releases the expired holds, whose rows
    /// are nowhere in Postgres; returns that gateway's ledger.
    async fn swept_by_another_gateway(&self, short: &Balances, expect: u64, spool: &std::path::Path) -> Ledger {
        tokio::time::sleep(Duration::from_millis(1_200)).await;
        let other = ledger(&self.pool, spool, &Arc::new(PendingDebits::default())).await;
        assert_eq!(sweep_once(short, &other).await.unwrap(), expect, "expired holds released");
        other
    }
}

/// Redis's view (available, held) must equal Postgres's credits − recorded debits.
async fn assert_books_balance(balances: &Balances, db: &sqlx::PgPool, tenant: Uuid) {
    balances.load(tenant).await.unwrap();
    let live = balances.live(tenant).await.unwrap();
    let books = lookup::balance(db, tenant).await.unwrap();
    assert!(live.loaded, "{live:?}");
    assert_eq!((live.available_nano, live.held_nano), (books.balance_nano, 0), "Redis {live:?}, Postgres {books:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_down_past_the_hold_ttl_has_its_replayed_rows_debited_once() {
    let w = World::new().await;
    let (pool, tenant, key) = (w.pool.clone(), w.tenant, w.key);
    let pending = Arc::new(PendingDebits::default());
    let short = w.balances(&pending, Duration::from_secs(1));
    let long = w.balances(&pending, Duration::from_secs(600));
    let dying = ledger(&w.unreachable, w.spool.path(), &pending).await;
    let [settled, open, swept, forgotten] = [11_000, 22_000, 33_000, 44_000].map(|cost| row(tenant, key, cost));
    // `settled` settled before the crash; `forgotten` too, but Redis has since lost its
    // state (an hour's TTL for a gateway-made id); `open` died before its settlement;
    // `swept` too, and its gateway stays down past the hold TTL.
    hold(&short, tenant, &swept.request_id).await;
    for r in [&settled, &open, &forgotten] {
        hold(&long, tenant, &r.request_id).await;
    }
    for r in [&settled, &open, &swept, &forgotten] {
        dying.record(r.clone()).await.unwrap();
    }
    for r in [&settled, &forgotten] {
        long.settle(tenant, &r.request_id, IdOrigin::Gateway, r.cost_nano, "settled", false).await.unwrap();
    }
    let mut conn = redis::Client::open(w.redis.url()).unwrap().get_multiplexed_async_connection().await.unwrap();
    let forgotten_state = KeySpace::new("left").request(tenant, &forgotten.request_id);
    let _: () = redis::cmd("DEL").arg(&forgotten_state).query_async(&mut conn).await.unwrap();
    dying.shutdown().await;
    drop(dying);

    // Down past the hold TTL: another gateway's sweeper releases `swept`'s hold.
    let other_spool = tempfile::tempdir().unwrap();
    let other = w.swept_by_another_gateway(&short, 1, other_spool.path()).await;

    // Meanwhile another gateway rebuilds the account (a resync, a flush): the debits the dead
    // run settled are in no table it reads (their rows are in the dead run's spool, their
    // pending registers died with it), so it drops them.
    let pending = Arc::new(PendingDebits::default());
    let long = w.balances(&pending, Duration::from_secs(600));
    let account = KeySpace::new("left").tenant(tenant).account;
    let _: () = redis::cmd("HSET").arg(&account).arg("loaded").arg("0").query_async(&mut conn).await.unwrap();
    long.load(tenant).await.unwrap();

    // The restart (a new process: nothing pending) replays the spool into Postgres. Redis
    // holds `open` and has debited nothing.
    let restarted = ledger(&pool, w.spool.path(), &pending).await;
    let books = lookup::balance(&pool, tenant).await.unwrap();
    assert_eq!(books.debits_nano, 110_000, "every row is recorded once");
    let live = long.live(tenant).await.unwrap();
    assert_eq!(live.available_nano, CREDIT - HOLD, "before reconciling: {live:?}");
    assert_eq!(live.held_nano, HOLD, "`open`'s hold is still held");

    let left = LeftBehindRows::of(&restarted);
    assert_eq!(left.len(), 4);
    left.run(&long, &restarted).await;
    assert!(left.is_empty(), "every recorded row is reconciled");
    assert_books_balance(&long, &pool, tenant).await;
    let state: String = redis::cmd("GET")
        .arg(KeySpace::new("left").request(tenant, &swept.request_id))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(state, "settled:33000", "the swept id stays refused, now as settled");

    // Running again (the next sweep) changes nothing.
    let again = LeftBehindRows::of(&restarted);
    assert!(again.is_empty(), "taken once");
    long.settle_left_behind(tenant, &[(swept.request_id.clone(), 33_000), (open.request_id.clone(), 22_000)])
        .await
        .unwrap();
    assert_books_balance(&long, &pool, tenant).await;
    restarted.shutdown().await;
    other.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn left_behind_rows_wait_for_postgres_before_they_are_reconciled() {
    let w = World::new().await;
    let (pool, tenant) = (w.pool.clone(), w.tenant);
    let pending = Arc::new(PendingDebits::default());
    let short = w.balances(&pending, Duration::from_secs(1));
    w.dies_after_spooling(&short, &pending, 70_000, false).await;
    let other_spool = tempfile::tempdir().unwrap();
    let other = w.swept_by_another_gateway(&short, 1, other_spool.path()).await;

    // Restarted while Postgres is still unreachable: the row waits in the spool, and so
    // does its reconciling (a rebuild now could not count it).
    let pending = Arc::new(PendingDebits::default());
    let short = w.balances(&pending, Duration::from_secs(1));
    let restarted = ledger(&w.unreachable, w.spool.path(), &pending).await;
    let left = LeftBehindRows::of(&restarted);
    left.run(&short, &restarted).await;
    assert_eq!(left.len(), 1, "not reconciled before its row is recorded");
    let live = short.live(tenant).await.unwrap();
    assert_eq!(live.available_nano, CREDIT, "{live:?}");
    restarted.shutdown().await;
    drop(restarted);

    // Once Postgres answers (here: the next start), it is.
    let back = ledger(&pool, w.spool.path(), &pending).await;
    let left = LeftBehindRows::of(&back);
    left.run(&short, &back).await;
    assert!(left.is_empty());
    assert_books_balance(&short, &pool, tenant).await;
    assert_eq!(short.live(tenant).await.unwrap().available_nano, CREDIT - 70_000);
    back.shutdown().await;
    other.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebuild_while_a_recorded_row_s_hold_is_open_counts_it_once() {
    let w = World::new().await;
    let (pool, tenant, key) = (w.pool.clone(), w.tenant, w.key);
    let pending = Arc::new(PendingDebits::default());
    let balances = w.balances(&pending, Duration::from_secs(600));
    let recorded = row(tenant, key, 400_000);
    let still_running = "still-running";
    hold(&balances, tenant, &recorded.request_id).await;
    hold(&balances, tenant, still_running).await;
    // The row reaches Postgres before its hold is settled (a replayed spool), then the
    // account is rebuilt (a resync, a flush).
    let ledger = ledger(&pool, w.spool.path(), &pending).await;
    ledger.record(recorded.clone()).await.unwrap();
    ledger.confirm(tenant, &recorded.request_id, None).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while lookup::balance(&pool, tenant).await.unwrap().debits_nano == 0 {
        assert!(std::time::Instant::now() < deadline, "the row was not recorded");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut conn = redis::Client::open(w.redis.url()).unwrap().get_multiplexed_async_connection().await.unwrap();
    let account = KeySpace::new("left").tenant(tenant).account;
    let _: () = redis::cmd("HSET").arg(&account).arg("loaded").arg("0").query_async(&mut conn).await.unwrap();
    balances.load(tenant).await.unwrap();
    let live = balances.live(tenant).await.unwrap();
    assert_eq!(live.held_nano, 2 * HOLD);
    assert_eq!(live.available_nano, CREDIT - 2 * HOLD, "the recorded row's cost is given back while its hold is open");
    // Its hold settles from the row (the sweeper, or the restart's reconciling): once.
    balances.settle(tenant, &recorded.request_id, IdOrigin::Gateway, 400_000, "settled", true).await.unwrap();
    let live = balances.live(tenant).await.unwrap();
    assert_eq!((live.available_nano, live.held_nano), (CREDIT - 400_000 - HOLD, HOLD));
    ledger.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_settled_debit_another_gateway_rebuilt_away_is_counted_after_the_restart() {
    let w = World::new().await;
    let (pool, tenant) = (w.pool.clone(), w.tenant);
    let pending = Arc::new(PendingDebits::default());
    let balances = w.balances(&pending, Duration::from_secs(600));
    w.dies_after_spooling(&balances, &pending, 90_000, true).await;

    // Another gateway (nothing pending) rebuilds the account while the row is only in the dead
    // run's spool: the debit is gone from Redis, though the request's state says settled.
    let pending = Arc::new(PendingDebits::default());
    let balances = w.balances(&pending, Duration::from_secs(600));
    let mut conn = redis::Client::open(w.redis.url()).unwrap().get_multiplexed_async_connection().await.unwrap();
    let account = KeySpace::new("left").tenant(tenant).account;
    let _: () = redis::cmd("HSET").arg(&account).arg("loaded").arg("0").query_async(&mut conn).await.unwrap();
    balances.load(tenant).await.unwrap();
    assert_eq!(balances.live(tenant).await.unwrap().available_nano, CREDIT);

    let restarted = ledger(&pool, w.spool.path(), &pending).await;
    let left = LeftBehindRows::of(&restarted);
    left.run(&balances, &restarted).await;
    assert_books_balance(&balances, &pool, tenant).await;
    assert_eq!(balances.live(tenant).await.unwrap().available_nano, CREDIT - 90_000);
    restarted.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_load_whose_snapshot_a_rebuild_mark_overtook_is_refused() {
    let (_redis, mut conn) = PrivateRedis::start_connected().await;
    let load = redis::Script::new(xjp_gateway::billing::balance::LOAD_LUA);
    let (account, holds, expiry) = ("{t}:account", "{t}:holds", "{t}:expiry");
    // A load read generation '' (none) and its snapshot; then a mark moved it to 1.
    let _: () = redis::cmd("HSET")
        .arg(account)
        .arg("loaded")
        .arg("0")
        .arg("gen")
        .arg("1")
        .query_async(&mut conn)
        .await
        .unwrap();
    // Arguments: balance, credit marker ttl, generation, hold ttl, no leases, the loader and
    // its snapshot.
    let invocation = |gen_: &str| {
        let mut invocation = load.key(account);
        invocation.key(holds).key(expiry).arg(1_000).arg(60).arg(gen_).arg(60).arg(0).arg("gw").arg("1:1:");
        invocation
    };
    let stale: i64 = invocation("").invoke_async(&mut conn).await.unwrap();
    assert_eq!(stale, -1, "an overtaken snapshot is not loaded");
    let loaded: String = redis::cmd("HGET").arg(account).arg("loaded").query_async(&mut conn).await.unwrap();
    assert_eq!(loaded, "0");
    // Read again after the mark: loaded.
    let fresh: i64 = invocation("1").invoke_async(&mut conn).await.unwrap();
    assert_eq!(fresh, 1);
    let available: i64 = redis::cmd("HGET").arg(account).arg("available").query_async(&mut conn).await.unwrap();
    assert_eq!(available, 1_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_one_tenant_s_rows_are_reconciled_across_chunks() {
    const ROWS: usize = 2_500; // the reconciliation takes 1,000 per statement and script
    const SMALL_HOLD: i64 = 100_000;
    let w = World::new().await;
    let (pool, tenant, key) = (w.pool.clone(), w.tenant, w.key);
    let pending = Arc::new(PendingDebits::default());
    let balances = w.balances(&pending, Duration::from_secs(600));
    let dying = ledger(&w.unreachable, w.spool.path(), &pending).await;
    let rows: Vec<TransactionRow> = (0..ROWS).map(|i| row(tenant, key, 1_000 + i as i64)).collect();
    for r in &rows {
        let reserved = balances.reserve(tenant, &r.request_id, IdOrigin::Gateway, SMALL_HOLD).await.unwrap();
        assert!(matches!(reserved, Reservation::Reserved { .. }), "{reserved:?}");
    }
    futures_util::future::join_all(rows.iter().map(|r| dying.record(r.clone())))
        .await
        .into_iter()
        .for_each(|r| r.unwrap());
    dying.shutdown().await;
    drop(dying);

    let restarted = ledger(&pool, w.spool.path(), &pending).await;
    let left = LeftBehindRows::of(&restarted);
    assert_eq!(left.len(), ROWS);
    assert_eq!(balances.live(tenant).await.unwrap().held_nano, ROWS as i64 * SMALL_HOLD);
    left.run(&balances, &restarted).await;
    assert!(left.is_empty(), "every chunk reconciled");
    let live = balances.live(tenant).await.unwrap();
    let costs: i64 = rows.iter().map(|r| r.cost_nano).sum();
    assert_eq!((live.available_nano, live.held_nano), (CREDIT - costs, 0), "each open hold settled from its row");
    assert_books_balance(&balances, &pool, tenant).await;
    restarted.shutdown().await;
}
