//! A settlement whose answer was lost (Redis applied it; the connection dropped before the
//! reply) is sent again, and `settle.lua` finds it settled. The debit is the lost try's:
//! the gateway counts it as its own unrecorded debit, and when the account was rebuilt from
//! Postgres in between (that rebuild knew neither the row nor the debit), the account is
//! marked and rebuilt again, this time with it. Before, the resend was answered "already
//! settled" and the debit was forgotten: a rebuild gave the tenant the request for free.

use crate::common;

use super::ledger_robustness::database;
use common::harness::TestDb;
use common::services::PrivateRedis;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;
use xjp_gateway::billing::settle_batch::RESENT_EPOCH;
use xjp_gateway::billing::{Balances, IdOrigin, KeySpace, Reservation, Settlement};
use xjp_gateway::db::RedisTarget;
use xjp_gateway::db::credits::{self, CreditKind};
use xjp_gateway::ledger::PendingDebits;

const CREDIT: i64 = 1_000_000_000;
const HOLD: i64 = 5_000_000;

/// Two views of one gateway's Redis account: `lost` applies a try whose answer the gateway
/// never got (its bookkeeping is thrown away), `gateway` is the gateway that resends.
struct Setup {
    _redis: PrivateRedis,
    _db: TestDb,
    tenant: Uuid,
    lost: Balances,
    gateway: Balances,
    pending: Arc<PendingDebits>,
    conn: redis::aio::MultiplexedConnection,
}

async fn setup() -> Setup {
    let redis = tokio::task::spawn_blocking(PrivateRedis::start).await.unwrap();
    let db = TestDb::create().await;
    let (pool, tenant, _) = database(&db.url).await;
    credits::insert(&pool, tenant, "start", CreditKind::TopUp, CREDIT, None).await.unwrap();
    let balances = |pending: Arc<PendingDebits>| {
        let target = RedisTarget::single(&redis.url(), None, None).unwrap();
        Balances::new(target, KeySpace::new("again"), pool.clone(), pending, Duration::from_secs(60))
    };
    let pending = Arc::new(PendingDebits::default());
    let (lost, gateway) = (balances(Arc::new(PendingDebits::default())), balances(pending.clone()));
    let conn = redis::Client::open(redis.url()).unwrap().get_multiplexed_async_connection().await.unwrap();
    Setup { _redis: redis, _db: db, tenant, lost, gateway, pending, conn }
}

impl Setup {
    /// Holds for `id` and applies its settlement in a try whose answer is lost.
    async fn settled_by_a_lost_try(&self, id: &str, cost: i64) {
        let held = self.gateway.reserve(self.tenant, id, IdOrigin::Gateway, HOLD).await.unwrap();
        assert!(matches!(held, Reservation::Reserved { .. }), "{held:?}");
        let applied = self.lost.settle(self.tenant, id, IdOrigin::Gateway, cost, "settled", false).await.unwrap();
        assert!(matches!(applied, Settlement::Settled { .. }), "{applied:?}");
    }

    /// Marks the account for a rebuild (as a resync or a dropped lease does) and rebuilds it.
    async fn rebuild(&mut self) {
        let account = self.gateway.keys().tenant(self.tenant).account;
        let _: () = redis::cmd("HSET").arg(&account).arg("loaded").arg(0).query_async(&mut self.conn).await.unwrap();
        self.gateway.load(self.tenant).await.unwrap();
    }

    async fn available(&self) -> (bool, i64) {
        let live = self.gateway.live(self.tenant).await.unwrap();
        (live.loaded, live.available_nano)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resent_settlement_found_applied_is_the_gateway_s_debit() {
    let s = setup().await;
    s.settled_by_a_lost_try("r1", 700).await;
    assert_eq!(s.pending.get(s.tenant), 0);
    let again = s.gateway.settle_again(s.tenant, "r1", IdOrigin::Gateway, 700, "settled").await.unwrap();
    let Settlement::Settled { available, epoch } = again else { panic!("{again:?}") };
    assert_eq!(available, CREDIT - 700, "debited once");
    assert!(epoch.as_deref().is_some_and(|e| e.contains('@')), "applied under this rebuild: {epoch:?}");
    assert_eq!(s.pending.get(s.tenant), 700, "the debit is this gateway's until its row is recorded");
    assert_eq!(s.available().await, (true, CREDIT - 700), "no rebuild needed: none happened since");
    // Without the resend flag (the sweeper, settling from a recorded row) a request found
    // settled is someone else's settlement: nothing is counted.
    let first = s.gateway.settle(s.tenant, "r1", IdOrigin::Gateway, 700, "settled", false).await.unwrap();
    assert_eq!(first, Settlement::AlreadySettled);
    assert_eq!(s.pending.get(s.tenant), 700);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebuild_between_the_lost_try_and_the_resend_is_done_again_with_the_debit() {
    let mut s = setup().await;
    s.settled_by_a_lost_try("r2", 900).await;
    // The account is rebuilt before the resend: Postgres has no row, this gateway no pending
    // debit, so the rebuild misses the 900.
    s.rebuild().await;
    assert_eq!(s.available().await, (true, CREDIT), "the rebuild could not know the lost try's debit");
    let again = s.gateway.settle_again(s.tenant, "r2", IdOrigin::Gateway, 900, "settled").await.unwrap();
    let Settlement::Settled { epoch, .. } = again else { panic!("{again:?}") };
    assert_eq!(epoch.as_deref(), Some(RESENT_EPOCH), "recount checks it against whatever rebuild comes");
    assert_eq!(s.pending.get(s.tenant), 900);
    assert!(!s.available().await.0, "the account is marked for a rebuild that counts the debit");
    s.gateway.load(s.tenant).await.unwrap();
    assert_eq!(s.available().await, (true, CREDIT - 900), "the 900 is owed once");
}
