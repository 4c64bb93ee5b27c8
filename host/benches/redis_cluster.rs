//! Reserve + settle on a 3-master Redis Cluster against one Redis server, side by side in one
//! run (`cargo bench -p xjp-gateway --bench redis_cluster`, or `cargo xtask bench`): private
//! `redis-server` processes started here, the same `Balances` code over each, sequential pairs
//! interleaved in blocks (same noise for both), then concurrent tasks over several tenants.
//! Knobs: `XJP_BENCH_PAIRS` (default 2000), `XJP_BENCH_TASKS` (32), `XJP_BENCH_TENANTS` (8).

mod support;

use anyhow::ensure;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::{BenchDb, env_usize};
use uuid::Uuid;
use xjp_gateway::billing::{Balances, IdOrigin, KeySpace, Reservation, Settlement};
use xjp_gateway::db::RedisTarget;
use xjp_gateway::db::credits::{self, CreditKind};
use xjp_gateway::ledger::PendingDebits;

const HOLD_NANO: i64 = 1_000_000;
const SETTLE_NANO: i64 = 174_000;
const BLOCK: usize = 100;

/// Redis processes started for the bench, killed on drop.
struct Servers(Vec<Child>, tempfile::TempDir);

impl Drop for Servers {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A port whose cluster bus port (+10000) is free too.
fn port() -> u16 {
    loop {
        let p = 20_000 + (Uuid::new_v4().as_u128() % 10_000) as u16;
        if TcpListener::bind(("127.0.0.1", p)).is_ok() && TcpListener::bind(("127.0.0.1", p + 10_000)).is_ok() {
            return p;
        }
    }
}

fn start(servers: &mut Servers, port: u16, cluster: bool) -> anyhow::Result<()> {
    let dir = servers.1.path().join(port.to_string());
    std::fs::create_dir_all(&dir)?;
    let mut cmd = Command::new("redis-server");
    cmd.args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir"]);
    cmd.arg(&dir);
    if cluster {
        cmd.args(["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"]);
    }
    servers.0.push(cmd.stdout(Stdio::null()).spawn()?);
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        ensure!(start.elapsed() < Duration::from_secs(10), "redis-server on {port} did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// One server and a 3-master cluster; returns their URLs (the cluster's comma-separated).
fn servers() -> anyhow::Result<(Servers, String, String)> {
    let mut servers = Servers(Vec::new(), tempfile::tempdir()?);
    let single = port();
    start(&mut servers, single, false)?;
    let nodes: Vec<u16> = (0..3).map(|_| port()).collect();
    for &p in &nodes {
        start(&mut servers, p, true)?;
    }
    let addrs: Vec<String> = nodes.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    let ok = Command::new("redis-cli")
        .args(["--cluster", "create"])
        .args(&addrs)
        .args(["--cluster-yes"])
        .stdout(Stdio::null())
        .status()?;
    ensure!(ok.success(), "redis-cli --cluster create failed");
    let client = redis::Client::open(format!("redis://127.0.0.1:{}", nodes[0]))?;
    let mut conn = client.get_connection()?;
    while !redis::cmd("CLUSTER").arg("INFO").query::<String>(&mut conn)?.contains("cluster_state:ok") {
        std::thread::sleep(Duration::from_millis(100));
    }
    let cluster = nodes.iter().map(|p| format!("redis://127.0.0.1:{p}")).collect::<Vec<_>>().join(",");
    Ok((servers, format!("redis://127.0.0.1:{single}"), cluster))
}

async fn pair(b: &Balances, tenant: Uuid, id: &str) -> anyhow::Result<Duration> {
    let t = Instant::now();
    let r = b.reserve(tenant, id, IdOrigin::Gateway, HOLD_NANO).await?;
    ensure!(matches!(r, Reservation::Reserved { .. }), "reserve {id}: {r:?}");
    let s = b.settle(tenant, id, IdOrigin::Gateway, SETTLE_NANO, "settled", false).await?;
    ensure!(matches!(s, Settlement::Settled { .. }), "settle {id}: {s:?}");
    Ok(t.elapsed())
}

/// `tasks` tasks settle `pairs` pairs over `tenants`; returns pairs per second.
async fn concurrent(b: &Arc<Balances>, tenants: &[Uuid], pairs: usize, tasks: usize) -> anyhow::Result<f64> {
    let run = Uuid::new_v4().simple().to_string();
    let start = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for t in 0..tasks {
        let (b, tenants, run) = (b.clone(), tenants.to_vec(), run.clone());
        set.spawn(async move {
            for i in (t..pairs).step_by(tasks) {
                pair(&b, tenants[i % tenants.len()], &format!("c-{run}-{i}")).await?;
            }
            anyhow::Ok(())
        });
    }
    while let Some(done) = set.join_next().await {
        done??;
    }
    Ok(pairs as f64 / start.elapsed().as_secs_f64())
}

fn pct(sorted: &[Duration], q: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

fn main() -> anyhow::Result<()> {
    if std::env::args().any(|a| a == "--list") {
        return Ok(());
    }
    let (pairs, tasks, n_tenants) =
        (env_usize("XJP_BENCH_PAIRS", 2000)?, env_usize("XJP_BENCH_TASKS", 32)?, env_usize("XJP_BENCH_TENANTS", 8)?);
    let (_servers, single_url, cluster_url) = servers()?;
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(async {
        let db = BenchDb::create().await?;
        let pool = xjp_gateway::db::connect_lazy(&db.url, 8)?;
        xjp_gateway::db::migrate(&pool).await?;
        let mut tenants = Vec::new();
        for i in 0..n_tenants.max(1) {
            let t = xjp_gateway::db::tenants::create(&pool, &format!("cluster bench {i}")).await?.id;
            credits::insert(&pool, t, "bench", CreditKind::TopUp, 1_000_000_000_000_000, None).await?;
            tenants.push(t);
        }
        let balances = |target| {
            let pending = Arc::new(PendingDebits::default());
            Arc::new(Balances::new(target, KeySpace::default(), pool.clone(), pending, Duration::from_secs(600)))
        };
        let single = balances(RedisTarget::single(&single_url, None, None)?);
        let cluster = balances(RedisTarget::cluster(&cluster_url, None, None)?);
        let run = Uuid::new_v4().simple().to_string();
        let (mut lat_single, mut lat_cluster) = (Vec::new(), Vec::new());
        for (name, b) in [("single", &single), ("cluster", &cluster)] {
            for i in 0..200 {
                pair(b, tenants[0], &format!("w-{name}-{run}-{i}")).await?;
            }
        }
        for block in 0..pairs.div_ceil(BLOCK) {
            for (name, b, lat) in [("s", &single, &mut lat_single), ("c", &cluster, &mut lat_cluster)] {
                for i in block * BLOCK..((block + 1) * BLOCK).min(pairs) {
                    lat.push(pair(b, tenants[0], &format!("q-{name}-{run}-{i}")).await?);
                }
            }
        }
        lat_single.sort_unstable();
        lat_cluster.sort_unstable();
        let rate_single = concurrent(&single, &tenants, pairs, tasks).await?;
        let rate_cluster = concurrent(&cluster, &tenants, pairs, tasks).await?;
        for b in [&single, &cluster] {
            for t in &tenants {
                ensure!(b.live(*t).await?.held_nano == 0, "a hold left open");
            }
        }
        let us = |d: Duration| d.as_secs_f64() * 1e6;
        println!("reserve + settle: one Redis server vs a 3-master Redis Cluster (same host, one run)\n");
        println!("| measurement | single | cluster | cluster / single |\n|---|---:|---:|---:|");
        for (what, q) in [("sequential pair p50 (µs)", 0.5), ("sequential pair p99 (µs)", 0.99)] {
            let (s, c) = (us(pct(&lat_single, q)), us(pct(&lat_cluster, q)));
            println!("| {what} | {s:.0} | {c:.0} | {:.2} |", c / s);
        }
        println!(
            "| {tasks} tasks over {} tenants (pairs/s) | {rate_single:.0} | {rate_cluster:.0} | {:.2} |",
            tenants.len(),
            rate_cluster / rate_single
        );
        pool.close().await;
        anyhow::Ok(())
    })
}
