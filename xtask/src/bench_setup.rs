//! What `cargo xtask bench e2e` starts: a fresh database with a tenant and a key, the mock
//! upstream (CPU 0), two gateways (CPU 1: billing off, full billing); and what it reads
//! around each run: gateway CPU time, Redis command and Postgres transaction counters.

use crate::demo::{Layout, Mock, gateway_config};
use crate::{Proc, root};
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The key the bench tenant's requests carry.
pub const KEY: &str = "XJP_benchbenchbenchbenchbenchbench0123456789";
/// The model routed to the mock (an OpenAI chat route in config/gateway.toml).
pub const MODEL: &str = "gpt-4o-mini";

fn pinned(cpu: usize, program: &Path) -> Command {
    let mut cmd = Command::new("taskset");
    cmd.arg("-c").arg(cpu.to_string()).arg(program);
    cmd
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn psql(url: &str, sql: &str) -> anyhow::Result<String> {
    let out = Command::new("psql").args([url, "-tAqc", sql]).output()?;
    anyhow::ensure!(out.status.success(), "psql {sql}: {}", String::from_utf8_lossy(&out.stderr));
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// A database of its own, dropped with `DROP ... WITH (FORCE)` at the end.
pub struct Database {
    pub admin_url: String,
    pub name: String,
    pub url: String,
}

impl Database {
    pub fn create() -> anyhow::Result<Database> {
        let admin_url =
            std::env::var("XJP_PG_ADMIN_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
        let name = format!("xjp_bench_{}", std::process::id());
        psql(&admin_url, &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))?;
        psql(&admin_url, &format!("CREATE DATABASE {name}"))?;
        let url = format!("{}/{name}", admin_url.rsplit_once('/').map_or(admin_url.as_str(), |(b, _)| b));
        Ok(Database { admin_url, name, url })
    }

    /// Transactions committed in this database so far (`pg_stat_database.xact_commit`).
    pub fn commits(&self) -> u64 {
        let sql = format!("SELECT xact_commit FROM pg_stat_database WHERE datname = '{}'", self.name);
        psql(&self.admin_url, &sql).ok().and_then(|s| s.parse().ok()).unwrap_or(0)
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        let _ = psql(&self.admin_url, &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name));
    }
}

/// Commands Redis executed so far, all clients (`INFO commandstats`; scripts' inner calls
/// count too).
pub fn redis_commands() -> u64 {
    let Ok(out) = Command::new("redis-cli").args(["INFO", "commandstats"]).output() else { return 0 };
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split("calls=").nth(1)?.split(',').next()?.parse::<u64>().ok())
        .sum()
}

/// Deletes the bench's Redis keys (its own prefix).
pub fn redis_forget(prefix: &str) {
    let script = "for _,k in ipairs(redis.call('KEYS', ARGV[1])) do redis.call('DEL', k) end return 0";
    let _ = Command::new("redis-cli").args(["EVAL", script, "0", &format!("{prefix}:*")]).output();
}

/// User + system CPU time of a process so far (`/proc/<pid>/stat`).
pub fn cpu_time(pid: u32) -> Duration {
    static TICK: std::sync::LazyLock<f64> = std::sync::LazyLock::new(|| {
        let out = Command::new("getconf").arg("CLK_TCK").output().ok();
        out.and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok()).unwrap_or(100.0)
    });
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the parenthesised name: state is field 3, utime 14, stime 15.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<u64> = rest.split_whitespace().skip(11).take(2).filter_map(|x| x.parse().ok()).collect();
    Duration::from_secs_f64(f.iter().sum::<u64>() as f64 / *TICK)
}

/// Per thread of a process, summed (`/proc/<pid>/task/*/schedstat`, nanoseconds): time on
/// a CPU, and time runnable but waiting for one (what other processes on the gateway's CPU
/// cost it). Exact, unlike the tick-sampled `utime + stime`, which at low request rates
/// charges whole ticks to a process woken by the timer tick; threads that exited meanwhile
/// are missed (tokio's blocking threads live 10 s idle).
pub fn thread_times(pid: u32) -> (Duration, Duration) {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return Default::default() };
    let (mut run, mut wait) = (0u64, 0u64);
    for s in tasks.filter_map(Result::ok).filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok()) {
        let mut f = s.split_whitespace().map(|x| x.parse::<u64>().unwrap_or(0));
        run += f.next().unwrap_or(0);
        wait += f.next().unwrap_or(0);
    }
    (Duration::from_nanos(run), Duration::from_nanos(wait))
}

/// CPU time the data stores used so far (`redis-server` and every `postgres` process, by
/// `thread_times`): what billing costs beyond the gateway. Backends that exit meanwhile are
/// missed (the gateways keep theirs open).
pub fn store_cpu() -> (Duration, Duration) {
    let (mut redis, mut pg) = (Duration::ZERO, Duration::ZERO);
    let Ok(procs) = std::fs::read_dir("/proc") else { return (redis, pg) };
    for entry in procs.filter_map(Result::ok) {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
        match std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default().trim() {
            "redis-server" => redis += thread_times(pid).0,
            "postgres" => pg += thread_times(pid).0,
            _ => {}
        }
    }
    (redis, pg)
}

fn wait_listening(addr: SocketAddr, child: &mut Child, log: &Path) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        if let Some(status) = child.try_wait()? {
            anyhow::bail!("exited with {status}; see {}", log.display());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    anyhow::bail!("not listening on {addr} after 120 s; see {}", log.display())
}

/// The mock upstream on `cpu`, answering `gpt-4o-mini` with a 1.7 KB chat completion and
/// its recorded stream, `chunk_ms` between chunks.
pub fn start_mock(bin: &Path, dir: &Path, cpu: usize, chunk_ms: u64) -> anyhow::Result<(Proc, SocketAddr)> {
    let fixtures = root().join("fixtures/openai");
    let scenarios = serde_json::json!({"scenarios": [{
        "model": MODEL,
        "response": fixtures.join("chat_basic.json"),
        "stream": fixtures.join("stream_usage.sse"),
        "chunk_interval_ms": chunk_ms,
    }]});
    let file = dir.join("mock-scenarios.json");
    std::fs::write(&file, serde_json::to_string_pretty(&scenarios)?)?;
    let mut child = pinned(cpu, &bin.join("xjp-mock-upstream"))
        .args(["--listen", "127.0.0.1:0", "--scenarios"])
        .arg(&file)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(dir.join("mock.log"))?)
        .spawn()?;
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("piped")).read_line(&mut line)?;
    let addr = line
        .trim()
        .strip_prefix("listening on http://")
        .and_then(|a| a.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("mock upstream said: {line}"))?;
    Ok((Proc(child), addr))
}

/// One gateway's config: config/gateway.toml with every provider on the mock, its own
/// state directory, the bench's Redis prefix, billing on or off (and with billing on, balance
/// leases when `leases`), and the ledger's insert linger when given.
pub fn write_config(
    dir: &Path,
    mock: SocketAddr,
    prefix: &str,
    billing: bool,
    leases: bool,
    insert_linger_ms: Option<u64>,
) -> anyhow::Result<(PathBuf, u16)> {
    let port = free_port()?;
    let listen = format!("127.0.0.1:{port}");
    let state = dir.join(if billing { "state-on" } else { "state-off" });
    std::fs::create_dir_all(&state)?;
    let (plugins, prices) = (root().join("target/plugins"), root().join("config"));
    let (plugins, prices, state) =
        (plugins.display().to_string(), prices.display().to_string(), state.display().to_string());
    let layout = Layout {
        listen: &listen,
        plugins_dir: &plugins,
        prices_dir: Some(&prices),
        state_dir: Some(&state),
        json_logs: false,
    };
    let mut doc: toml::Table = gateway_config(&layout, Mock::All(&format!("http://{mock}")))?.parse()?;
    let mut set = |table: &str, key: &str, value: toml::Value| {
        let t = doc.entry(table).or_insert_with(|| toml::Table::new().into());
        t.as_table_mut().expect("a table").insert(key.into(), value);
    };
    set("redis", "key_prefix", prefix.into());
    set("billing", "enabled", billing.into());
    set("billing", "leases", (billing && leases).into());
    if let Some(ms) = insert_linger_ms {
        set("billing", "insert_linger_ms", i64::try_from(ms)?.into());
    }
    set("plugins", "cache_dir", root().join("target/plugin-cache").display().to_string().into());
    // The one bench tenant stands for many: the per-tenant cap (64 by default) would refuse
    // the `many` phase's streams with 429.
    set("limits", "max_concurrent_per_tenant", 100_000.into());
    let path = dir.join(if billing { "gateway-on.toml" } else { "gateway-off.toml" });
    std::fs::write(&path, toml::to_string(&doc)?)?;
    Ok((path, port))
}

/// `seed-demo`: the tenant `demo` with $1,000,000 and the bench key.
pub fn seed(bin: &Path, config: &Path, db: &Database) -> anyhow::Result<()> {
    let out = Command::new(bin.join("xjp-gateway"))
        .arg("seed-demo")
        .arg("--config")
        .arg(config)
        .args(["--balance-usd", "1000000", "--key", KEY])
        .env("DATABASE_URL", &db.url)
        .output()?;
    anyhow::ensure!(out.status.success(), "seed-demo: {}", String::from_utf8_lossy(&out.stderr));
    Ok(())
}

/// `xjp-gateway serve` pinned to `cpu`, logging to `logs/<config>.log`; returns once it
/// listens. (Not beside the config: the gateway watches that directory, and a log written
/// there wakes both gateways' watchers on every line, ~9 % of their CPU.)
pub fn start_gateway(bin: &Path, config: &Path, port: u16, cpu: usize, db: &Database) -> anyhow::Result<Proc> {
    let logs = config.parent().unwrap_or(Path::new(".")).join("logs");
    std::fs::create_dir_all(&logs)?;
    let log = logs.join(config.with_extension("log").file_name().unwrap_or_default());
    let mut child = pinned(cpu, &bin.join("xjp-gateway"))
        .arg("serve")
        .arg("--config")
        .arg(config)
        .env("DATABASE_URL", &db.url)
        .env("REDIS_URL", std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/".into()))
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log)?)
        .spawn()?;
    wait_listening(SocketAddr::from(([127, 0, 0, 1], port)), &mut child, &log)?;
    Ok(Proc(child))
}
