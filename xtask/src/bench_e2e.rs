//! `cargo xtask bench e2e`: what the gateway adds end to end, measured side by side in one
//! run against the mock upstream called directly, the gateway with billing off and the
//! gateway with full billing (README, "Benchmarks"). The debug xtask builds the release
//! binaries and re-runs itself from the release build pinned to the load CPU.

use crate::bench_load::{self, Conn, Target};
use crate::bench_many;
use crate::bench_report::{self, Measured, Phase};
use crate::bench_setup::{self, Database, KEY, MODEL};
use crate::{cargo, root, run};
use bytes::Bytes;
use clap::Parser;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

/// Set in the release child.
const CHILD: &str = "XJP_BENCH_E2E_CHILD";

/// Knobs of `cargo xtask bench e2e` (the defaults take about a minute).
#[derive(Debug, Clone, Parser)]
#[command(name = "cargo xtask bench e2e")]
pub struct E2e {
    /// Rounds per phase; the target order reverses each round (cancels drift).
    #[arg(long, default_value_t = 3)]
    rounds: u32,
    /// Seconds per target of the concurrency-1 closed loop (split across the rounds).
    #[arg(long, default_value_t = 9.0)]
    c1_secs: f64,
    /// The fixed low rate (requests/s, one connection) whose tail is measured.
    #[arg(long, default_value_t = 50.0)]
    low_rps: f64,
    /// Seconds per target at the fixed low rate (split across the rounds).
    #[arg(long, default_value_t = 6.0)]
    low_secs: f64,
    /// Connections of the saturation closed loop.
    #[arg(long, default_value_t = 64)]
    conns: usize,
    /// Seconds per target of the saturation loop (split across the rounds).
    #[arg(long, default_value_t = 6.0)]
    sat_secs: f64,
    /// Streamed requests per target (sequential), timed to their first byte.
    #[arg(long, default_value_t = 30)]
    streams: usize,
    /// Streams held open at once per gateway in the `many` phase (memory at the peak).
    #[arg(long, default_value_t = 1000)]
    many: usize,
    /// Milliseconds between the mock's stream chunks.
    #[arg(long, default_value_t = 2)]
    chunk_ms: u64,
    /// CPU of the gateways.
    #[arg(long, default_value_t = 1)]
    gateway_cpu: usize,
    /// CPU of the mock and the load generator.
    #[arg(long, default_value_t = 0)]
    load_cpu: usize,
    /// Phases to run (c1, low, sat, stream; and `many`, not by default: N concurrent streams,
    /// peak RSS — give it slow chunks and a raised `ulimit -n`).
    #[arg(long, value_delimiter = ',', default_value = "c1,low,sat,stream")]
    phases: Vec<String>,
    /// Targets to measure (direct, billing-off, billing-on), e.g. one to profile it.
    #[arg(long, value_delimiter = ',', default_value = "direct,billing-off,billing-on")]
    targets: Vec<String>,
    /// The full-billing gateway reserves every request through Redis (`[billing] leases =
    /// false`; leases are on by default).
    #[arg(long)]
    no_leases: bool,
    /// Requests to the gateways carry ids of their own (`Idempotency-Key`, checked against the
    /// ledger beside the reserve, held in Redis rather than in a lease); by default the
    /// gateway makes the ids.
    #[arg(long)]
    client_ids: bool,
    /// The full-billing gateway's `[billing] insert_linger_ms` (its default when not given).
    #[arg(long)]
    insert_linger_ms: Option<u64>,
    /// Use the release binaries as they are.
    #[arg(long)]
    no_build: bool,
    /// Where the JSON goes (relative to the workspace).
    #[arg(long, default_value = "target/bench-e2e.json")]
    json: PathBuf,
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root().join("target"), PathBuf::from)
}

/// Entry point: `args` follow `bench e2e`.
pub fn main(args: &[String]) -> anyhow::Result<()> {
    let opts = match E2e::try_parse_from(std::iter::once("e2e").chain(args.iter().map(String::as_str))) {
        Ok(opts) => opts,
        // `--help` (and a bad knob) print clap's own text, without a backtrace.
        Err(e) if e.use_stderr() => e.exit(),
        Err(e) => return Ok(e.print()?),
    };
    if std::env::var_os(CHILD).is_some() {
        return measure_all(&opts);
    }
    crate::services::ensure_running()?;
    if !opts.no_build {
        crate::plugins::build_all()?;
        run(cargo().args(["build", "--release", "-p", "xjp-gateway", "-p", "xjp-mock-upstream", "-p", "xtask"]))?;
    }
    let me = target_dir().join("release/xtask");
    let mut child = Command::new("taskset");
    child.arg("-c").arg(opts.load_cpu.to_string()).arg(me).args(["bench", "e2e"]).args(args).env(CHILD, "1");
    run(&mut child)
}

const BODY: &str = r#"{"model":"gpt-4o-mini","messages":[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"Explain Rust ownership in one paragraph."}],"max_tokens":256,"temperature":0.2}"#;

fn measure_all(opts: &E2e) -> anyhow::Result<()> {
    let bin = target_dir().join("release");
    // A directory per run: the gateways watch their config's directory and lock their spool.
    let dir = target_dir().join("bench-e2e").join(std::process::id().to_string());
    std::fs::create_dir_all(&dir)?;
    let db = Database::create()?;
    let prefix = format!("xjpbench{}", std::process::id());
    let (_mock, mock) = bench_setup::start_mock(&bin, &dir, opts.load_cpu, opts.chunk_ms)?;
    let (off_cfg, off_port) = bench_setup::write_config(&dir, mock, &prefix, false, false, None)?;
    let (on_cfg, on_port) =
        bench_setup::write_config(&dir, mock, &prefix, true, !opts.no_leases, opts.insert_linger_ms)?;
    bench_setup::seed(&bin, &on_cfg, &db)?;
    let off = bench_setup::start_gateway(&bin, &off_cfg, off_port, opts.gateway_cpu, &db)?;
    let on = bench_setup::start_gateway(&bin, &on_cfg, on_port, opts.gateway_cpu, &db)?;
    let auth = Some(format!("Bearer {KEY}"));
    let all = [
        Target { name: "direct", addr: mock, auth: None, pid: None, client_ids: false },
        Target {
            name: "billing-off",
            addr: ([127, 0, 0, 1], off_port).into(),
            auth: auth.clone(),
            pid: Some(off.0.id()),
            client_ids: opts.client_ids,
        },
        Target {
            name: "billing-on",
            addr: ([127, 0, 0, 1], on_port).into(),
            auth,
            pid: Some(on.0.id()),
            client_ids: opts.client_ids,
        },
    ];
    let targets: Vec<Target> = all.into_iter().filter(|t| opts.targets.iter().any(|n| n == t.name)).collect();
    eprintln!(
        "bench e2e: mock {mock} (CPU {}), gateways billing-off pid {} / billing-on pid {} (CPU {}); logs in {}",
        opts.load_cpu,
        off.0.id(),
        on.0.id(),
        opts.gateway_cpu,
        dir.display()
    );
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let result = rt.block_on(phases(opts, &targets, &db));
    let many = if opts.phases.iter().any(|p| p == "many") {
        let body = Bytes::from(BODY.replacen("\"max_tokens\"", "\"stream\":true,\"max_tokens\"", 1));
        let gateways = targets.iter().filter(|t| t.pid.is_some());
        Some(rt.block_on(async {
            let mut out = Vec::new();
            for t in gateways {
                out.push(bench_many::many_streams(t, &body, opts.many).await?);
            }
            anyhow::Ok(out)
        }))
    } else {
        None
    };
    bench_setup::redis_forget(&prefix);
    drop((off, on));
    for state in ["state-off", "state-on"] {
        let _ = std::fs::remove_dir_all(dir.join(state));
    }
    let ms = result?;
    let table = bench_report::table(&ms);
    println!("\n{table}");
    if let Some(many) = many {
        println!("\n{}", bench_many::report(&many?));
    }
    if let Some(errors) = bench_report::error_summary(&ms) {
        eprintln!("WARNING: {errors} (see the gateway logs in {})", dir.display());
    }
    let settings = serde_json::json!({
        "rounds": opts.rounds, "c1_secs": opts.c1_secs, "low_rps": opts.low_rps, "low_secs": opts.low_secs,
        "conns": opts.conns, "sat_secs": opts.sat_secs, "streams": opts.streams, "chunk_ms": opts.chunk_ms,
        "gateway_cpu": opts.gateway_cpu, "load_cpu": opts.load_cpu, "model": MODEL, "body": BODY,
    });
    let json = root().join(&opts.json);
    std::fs::write(&json, serde_json::to_string_pretty(&bench_report::json(&ms, settings))?)?;
    eprintln!("written: {}", json.display());
    Ok(())
}

/// Counters around one timed run of a gateway target: CPU time, run-queue wait, Redis
/// commands, Postgres commits, the stores' CPU time.
struct Counters {
    ticks: Option<Duration>,
    cpu: Option<Duration>,
    wait: Option<Duration>,
    redis: u64,
    pg: u64,
    /// Redis's and Postgres's CPU time.
    stores: (Duration, Duration),
}

impl Counters {
    fn read(t: &Target, db: &Database) -> Counters {
        let gateway = t.pid.is_some();
        let times = t.pid.map(bench_setup::thread_times);
        Counters {
            ticks: t.pid.map(bench_setup::cpu_time),
            cpu: times.map(|t| t.0),
            wait: times.map(|t| t.1),
            redis: if gateway { bench_setup::redis_commands() } else { 0 },
            pg: if gateway { db.commits() } else { 0 },
            stores: if gateway { bench_setup::store_cpu() } else { Default::default() },
        }
    }
}

fn sum(total: &mut Option<Duration>, before: Option<Duration>, after: Option<Duration>) {
    if let (Some(b), Some(a)) = (before, after) {
        *total = Some(total.unwrap_or_default() + a.saturating_sub(b));
    }
}

/// Runs one timed segment of `which` phase on `t`, adding its sample and counters to `m`.
async fn segment(
    t: &Target,
    db: &Database,
    m: &mut Measured,
    which: fn(&mut Measured) -> &mut Phase,
    run: impl std::future::Future<Output = anyhow::Result<bench_load::Sample>>,
) -> anyhow::Result<()> {
    let before = Counters::read(t, db);
    let s = run.await?;
    let after = Counters::read(t, db);
    if t.pid.is_some() {
        m.redis_cmds += after.redis.saturating_sub(before.redis);
        m.pg_commits += after.pg.saturating_sub(before.pg);
        m.redis_cpu += after.stores.0.saturating_sub(before.stores.0);
        m.pg_cpu += after.stores.1.saturating_sub(before.stores.1);
        m.counted += s.latencies_us.len() as u64;
    }
    let phase = which(m);
    sum(&mut phase.ticks, before.ticks, after.ticks);
    sum(&mut phase.cpu, before.cpu, after.cpu);
    sum(&mut phase.wait, before.wait, after.wait);
    phase.s.merge(s);
    Ok(())
}

/// The target order of round `r`: reversed every other round.
fn order(targets: &[Target], r: u32) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..targets.len()).collect();
    if r % 2 == 1 {
        idx.reverse();
    }
    idx
}

async fn phases(opts: &E2e, targets: &[Target], db: &Database) -> anyhow::Result<Vec<Measured>> {
    let body = Bytes::from_static(BODY.as_bytes());
    let stream_body = Bytes::from(BODY.replacen("\"max_tokens\"", "\"stream\":true,\"max_tokens\"", 1));
    let mut ms: Vec<Measured> = targets.iter().map(|t| Measured { name: t.name, ..Measured::default() }).collect();
    for t in targets {
        let mut c = Conn::open(t).await?;
        c.once(&body).await.map_err(|e| anyhow::anyhow!("{}: the first request failed: {e}", t.name))?;
        bench_load::closed_loop(t, &body, 4, 1.0).await?;
    }
    // Idle: what the gateways burn with no request (background jobs, tickers), once the
    // warm-up's work is done (an idle lease goes back after 2 s, rows linger 250 ms).
    tokio::time::sleep(Duration::from_secs(3)).await;
    let idle = Duration::from_secs(2);
    let before: Vec<_> = targets.iter().map(|t| t.pid.map(bench_setup::thread_times)).collect();
    tokio::time::sleep(idle).await;
    for ((t, m), b) in targets.iter().zip(&mut ms).zip(before) {
        if let (Some(pid), Some((run, _))) = (t.pid, b) {
            let spent = bench_setup::thread_times(pid).0.saturating_sub(run);
            m.idle_ms_per_s = Some(spent.as_secs_f64() * 1e3 / idle.as_secs_f64());
        }
    }
    let rounds = opts.rounds.max(1);
    let share = |secs: f64| secs / f64::from(rounds);
    let on = |phase: &str| opts.phases.iter().any(|p| p == phase);
    for r in 0..rounds {
        for i in order(targets, r) {
            let (t, m) = (&targets[i], &mut ms[i]);
            if on("c1") {
                let run = bench_load::closed_loop(t, &body, 1, share(opts.c1_secs));
                segment(t, db, m, |m| &mut m.c1, run).await?;
            }
            if on("low") {
                let run = bench_load::fixed_rate(t, &body, opts.low_rps, share(opts.low_secs));
                segment(t, db, m, |m| &mut m.low, run).await?;
            }
            if on("stream") {
                let n = opts.streams.div_ceil(rounds as usize);
                bench_load::streams(t, &stream_body, n, &mut m.stream).await?;
            }
        }
        eprintln!("round {}/{rounds}: latency phases done", r + 1);
    }
    if on("sat") {
        for r in 0..rounds {
            for i in order(targets, r) {
                let run = bench_load::closed_loop(&targets[i], &body, opts.conns, share(opts.sat_secs));
                segment(&targets[i], db, &mut ms[i], |m| &mut m.sat, run).await?;
            }
            eprintln!("round {}/{rounds}: saturation done", r + 1);
        }
    }
    Ok(ms)
}
