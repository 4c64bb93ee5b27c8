//! The money invariants on a real 3-master Redis Cluster (`[redis] mode = "cluster"`): tenants
//! spread over every master, exact admission under concurrency, one debit per request id, the
//! sweeper finding holds through the index on another node, and a master failing over to its
//! replica mid-service without losing or double-billing anything.

use crate::common;

use common::cluster::PrivateCluster;
use common::harness::{Options, TestGateway, keys};
use common::http::{post, send};
use common::money::{CHAT, assert_books_balance, books, hold_for, wait_rows};
use common::scenarios::{mock, pair_for};
use std::time::{Duration, Instant};
use uuid::Uuid;
use xjp_gateway::billing::IdOrigin;
use xjp_gateway::db::credits::{self, CreditKind};

const PER_TENANT: usize = 40;
const K: i64 = 9;

fn cluster_options(cluster: &PrivateCluster) -> Options {
    Options {
        redis_url: Some(cluster.urls()),
        redis_toml: "mode = \"cluster\"".into(),
        initial_balance_nano: 0,
        hold_ttl_secs: 3,
        sweep_interval_ms: 300,
        ..Options::default()
    }
}

/// Tenants (with a key each) until every master holds at least one tenant's account.
async fn tenants_on_every_master(gw: &TestGateway, cluster: &PrivateCluster) -> Vec<(Uuid, String)> {
    let masters = cluster.masters();
    let mut tenants = vec![(gw.tenant, gw.key.clone())];
    let account = |t: Uuid| keys().tenant(t).account;
    let covered = |ts: &[(Uuid, String)]| {
        let on: Vec<u16> = ts.iter().map(|(t, _)| cluster.master_of(&account(*t))).collect();
        masters.iter().all(|m| on.contains(m))
    };
    while !covered(&tenants) {
        assert!(tenants.len() < 40, "tenants never covered every master");
        let tenant = xjp_gateway::db::tenants::create(&gw.gw.db, "cluster tenant").await.unwrap();
        let (_, key) = xjp_gateway::db::keys::create(&gw.gw.db, tenant.id, None).await.unwrap();
        tenants.push((tenant.id, key));
    }
    tenants
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn money_invariants_hold_on_a_three_master_cluster() {
    let cluster = tokio::task::spawn_blocking(|| PrivateCluster::start(3, 0)).await.unwrap();
    let mock = mock().await;
    let model = "gpt-4o-mini-2024-07-18";
    mock.set_scenario(model, pair_for(model).with_first_byte_delay(Duration::from_millis(2000)));
    let gw = TestGateway::start_with(&mock.base_url(), cluster_options(&cluster)).await;
    let tenants = tenants_on_every_master(&gw, &cluster).await;
    let hold = hold_for(&gw.gw, "gpt-4o-mini", &CHAT);
    for (tenant, _) in &tenants {
        credits::insert(&gw.gw.db, *tenant, "k-holds", CreditKind::TopUp, K * hold, None).await.unwrap();
    }

    // Every tenant at once: exactly K of each tenant's requests fit.
    let url = format!("{}/v1/chat/completions", gw.url);
    let calls: Vec<_> = tenants
        .iter()
        .flat_map(|(tenant, key)| (0..PER_TENANT).map(move |_| (*tenant, key.clone())))
        .map(|(tenant, key)| {
            let url = url.clone();
            tokio::spawn(async move { (tenant, post(&url, &key, &CHAT).await.status) })
        })
        .collect();
    let mut admitted = std::collections::HashMap::<Uuid, i64>::new();
    for c in calls {
        let (tenant, status) = c.await.unwrap();
        match status {
            200 => *admitted.entry(tenant).or_default() += 1,
            402 => {}
            other => panic!("unexpected status {other}"),
        }
    }
    for (tenant, _) in &tenants {
        assert_eq!(admitted.get(tenant).copied().unwrap_or(0), K, "tenant {tenant}: exactly the k that fit");
        wait_rows(&gw.gw.db, *tenant, PER_TENANT as i64, Duration::from_secs(30)).await;
        assert_books_balance(&gw.gw, &gw.gw.db, *tenant).await;
    }

    // The same request id sent ten times at once is answered and billed once.
    let fresh = xjp_gateway::db::tenants::create(&gw.gw.db, "repeats").await.unwrap().id;
    let (_, fresh_key) = xjp_gateway::db::keys::create(&gw.gw.db, fresh, None).await.unwrap();
    credits::insert(&gw.gw.db, fresh, "repeats", CreditKind::TopUp, 10 * hold, None).await.unwrap();
    let (tenant, key) = (&fresh, &fresh_key);
    let repeats: Vec<_> = (0..10)
        .map(|_| {
            let (url, auth) = (url.clone(), format!("Bearer {key}"));
            tokio::spawn(async move {
                let h = [
                    ("authorization", auth.as_str()),
                    ("content-type", "application/json"),
                    ("idempotency-key", "once"),
                ];
                send("POST", &url, &h, CHAT.clone()).await.status
            })
        })
        .collect();
    let mut ok = 0;
    for r in repeats {
        ok += usize::from(r.await.unwrap() == 200);
    }
    assert_eq!(ok, 1, "one of ten repeats is answered");
    wait_rows(&gw.gw.db, *tenant, 1, Duration::from_secs(15)).await;
    let rows: i64 =
        sqlx::query_scalar("SELECT count(*) FROM billing_transactions WHERE tenant_id = $1 AND request_id = 'once'")
            .bind(tenant)
            .fetch_one(&gw.gw.db)
            .await
            .unwrap();
    assert_eq!(rows, 1, "billed once");
    assert_books_balance(&gw.gw, &gw.gw.db, *tenant).await;

    // An orphaned hold (a gateway died holding it) is found through the index, which lives on
    // its own node, and released.
    let balances = &gw.gw.billing.balances;
    let (tenant, _) = &tenants[2];
    let index_master = cluster.master_of(balances.keys().hold_tenants());
    let tenant_master = cluster.master_of(&keys().tenant(*tenant).account);
    tracing::info!(index_master, tenant_master, "hold index and tenant placement");
    balances.reserve(*tenant, "orphan", IdOrigin::Client, 5_000).await.unwrap();
    let start = Instant::now();
    while balances.live(*tenant).await.unwrap().held_nano > 0 {
        assert!(start.elapsed() < Duration::from_secs(15), "the orphaned hold was never swept");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_books_balance(&gw.gw, &gw.gw.db, *tenant).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_master_failing_over_to_its_replica_loses_nothing() {
    let mut cluster = tokio::task::spawn_blocking(|| PrivateCluster::start(3, 1)).await.unwrap();
    let mock = mock().await;
    let gw = TestGateway::start_with(
        &mock.base_url(),
        Options { initial_balance_nano: 100_000_000_000, ..cluster_options(&cluster) },
    )
    .await;
    let url = format!("{}/v1/chat/completions", gw.url);
    for _ in 0..10 {
        assert_eq!(post(&url, &gw.key, &CHAT).await.status, 200);
    }
    wait_rows(&gw.gw.db, gw.tenant, 10, Duration::from_secs(15)).await;
    assert_books_balance(&gw.gw, &gw.gw.db, gw.tenant).await;
    // Replication is asynchronous: let the replica catch up before its master dies.
    tokio::time::sleep(Duration::from_secs(1)).await;

    let master = cluster.master_of(&keys().tenant(gw.tenant).account);
    cluster = tokio::task::spawn_blocking(move || {
        cluster.kill(master);
        cluster
    })
    .await
    .unwrap();
    // Until the replica is promoted the tenant's slot has no master: requests are refused
    // with 503 (fail closed), never served free and never a 500.
    let start = Instant::now();
    let mut served = 0;
    while served < 10 {
        let status = post(&url, &gw.key, &CHAT).await.status;
        assert!(status == 200 || status == 503, "status {status} during failover");
        if status == 200 {
            served += 1;
        } else {
            let nodes: redis::RedisResult<String> =
                cluster.query(cluster.masters()[0], redis::cmd("CLUSTER").arg("NODES"));
            assert!(start.elapsed() < Duration::from_secs(30), "never served after the failover: {nodes:?}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    assert_ne!(cluster.master_of(&keys().tenant(gw.tenant).account), master);
    let start = Instant::now();
    while books(&gw.gw.db, gw.tenant).await.served < 20 {
        assert!(start.elapsed() < Duration::from_secs(15), "{:?}", books(&gw.gw.db, gw.tenant).await);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(books(&gw.gw.db, gw.tenant).await.served, 20, "every answered request billed, once");
    assert_books_balance(&gw.gw, &gw.gw.db, gw.tenant).await;
}
