//! Starts the local Postgres and Redis the tests and `cargo xtask run` need, when absent.

use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

fn listening(port: u16) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    TcpStream::connect_timeout(&addr, Duration::from_millis(300)).is_ok()
}

fn wait_for(port: u16, what: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if listening(port) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    anyhow::bail!("{what} did not start listening on 127.0.0.1:{port}")
}

fn start_postgres() -> anyhow::Result<()> {
    let versions: Vec<String> = std::fs::read_dir("/etc/postgresql")
        .map(|d| d.filter_map(Result::ok).map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    let version = versions.iter().max().ok_or_else(|| {
        anyhow::anyhow!("Postgres is not running on 127.0.0.1:5432 and no cluster was found under /etc/postgresql; install PostgreSQL or set DATABASE_URL")
    })?;
    eprintln!("starting Postgres {version}");
    crate::run(Command::new("pg_ctlcluster").args(["--skip-systemctl-redirect", version, "main", "start"]))?;
    wait_for(5432, "Postgres")
}

fn start_redis() -> anyhow::Result<()> {
    eprintln!("starting Redis");
    crate::run(Command::new("redis-server").args([
        "--daemonize",
        "yes",
        "--bind",
        "127.0.0.1",
        "-::1",
        "--port",
        "6379",
        "--save",
        "",
        "--appendonly",
        "no",
    ]))?;
    wait_for(6379, "Redis")
}

/// Ensures Postgres (5432) and Redis (6379) answer on loopback, starting them if needed.
pub fn ensure_running() -> anyhow::Result<()> {
    if !listening(5432) {
        start_postgres()?;
    }
    if !listening(6379) {
        start_redis()?;
    }
    Ok(())
}
