//! Private Postgres and Redis instances for tests that stop, kill or flush them (the
//! shared ones keep running for every other test).

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A free TCP port on loopback.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

pub fn wait_port(port: u16, up: bool) {
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() != up {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "port {port} never became {}",
            if up { "open" } else { "closed" }
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn pg_bin(tool: &str) -> PathBuf {
    let versions =
        std::fs::read_dir("/usr/lib/postgresql").expect("PostgreSQL server binaries under /usr/lib/postgresql");
    let newest = versions.filter_map(Result::ok).map(|e| e.path()).max().unwrap();
    newest.join("bin").join(tool)
}

/// Runs a Postgres tool as the `postgres` user when we are root (initdb refuses root).
fn pg_command(tool: &str) -> Command {
    let is_root = Command::new("id").arg("-u").output().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    if is_root {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(pg_bin(tool));
        c
    } else {
        Command::new(pg_bin(tool))
    }
}

/// A throwaway Postgres cluster on its own port.
pub struct PrivatePostgres {
    pub port: u16,
    dir: tempfile::TempDir,
}

impl PrivatePostgres {
    /// initdb + start.
    pub fn start() -> PrivatePostgres {
        Self::start_configured(|_| {})
    }

    /// initdb, then `configure(data_dir)` (edit postgresql.conf, pg_hba.conf, add files:
    /// they are handed to the `postgres` user afterwards), then start.
    pub fn start_configured(configure: impl FnOnce(&std::path::Path)) -> PrivatePostgres {
        let dir = tempfile::Builder::new().prefix("xjp-pg-").tempdir_in("/tmp").unwrap();
        let _ = Command::new("chown").args(["-R", "postgres:postgres"]).arg(dir.path()).status();
        let data = dir.path().join("data");
        let ok = pg_command("initdb")
            .args(["-A", "trust", "-U", "postgres", "-D"])
            .arg(&data)
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(ok.success(), "initdb failed");
        configure(&data);
        let _ = Command::new("chown").args(["-R", "postgres:postgres"]).arg(dir.path()).status();
        let pg = PrivatePostgres { port: free_port(), dir };
        pg.resume();
        pg
    }

    /// The `postgres` database URL.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Starts (again) on the same port.
    pub fn resume(&self) {
        let data = self.dir.path().join("data");
        let opts = format!("-p {} -c listen_addresses=127.0.0.1 -k {}", self.port, self.dir.path().display());
        let ok = pg_command("pg_ctl")
            .args(["-D"])
            .arg(&data)
            .args(["-o", &opts, "-l"])
            .arg(self.dir.path().join("log"))
            .args(["-w", "start"])
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(ok.success(), "pg_ctl start failed");
        wait_port(self.port, true);
    }

    /// Stops immediately (connections are cut).
    pub fn stop(&self) {
        let data = self.dir.path().join("data");
        let _ = pg_command("pg_ctl")
            .args(["-D"])
            .arg(&data)
            .args(["-m", "immediate", "-w", "stop"])
            .stdout(Stdio::null())
            .status();
        wait_port(self.port, false);
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A throwaway Redis on its own port.
pub struct PrivateRedis {
    pub port: u16,
    child: Child,
}

impl PrivateRedis {
    /// Starts one (off the runtime's threads) and opens a multiplexed connection to it.
    pub async fn start_connected() -> (PrivateRedis, redis::aio::MultiplexedConnection) {
        let redis = tokio::task::spawn_blocking(PrivateRedis::start).await.unwrap();
        let conn = redis::Client::open(redis.url()).unwrap().get_multiplexed_async_connection().await.unwrap();
        (redis, conn)
    }

    /// Starts `redis-server` without persistence.
    pub fn start() -> PrivateRedis {
        Self::start_on(free_port())
    }

    /// Starts `redis-server` without persistence on `port`.
    pub fn start_on(port: u16) -> PrivateRedis {
        Self::start_with(port, &["--port", &port.to_string()])
    }

    /// Starts `redis-server` speaking TLS only on its port (`rediss://`), with this
    /// certificate and key (PEM files), not asking clients for certificates unless
    /// `client_ca` is given.
    pub fn start_tls(
        cert: &std::path::Path,
        key: &std::path::Path,
        client_ca: Option<&std::path::Path>,
    ) -> PrivateRedis {
        let port = free_port();
        let (cert, key) = (cert.display().to_string(), key.display().to_string());
        let mut args = vec!["--port".to_string(), "0".into(), "--tls-port".into(), port.to_string()];
        args.extend(["--tls-cert-file".into(), cert.clone(), "--tls-key-file".into(), key]);
        match client_ca {
            Some(ca) => args.extend(["--tls-ca-cert-file".into(), ca.display().to_string()]),
            // Redis wants a CA file even when it asks clients for none.
            None => args.extend(["--tls-ca-cert-file".into(), cert, "--tls-auth-clients".into(), "no".into()]),
        }
        Self::start_with(port, &args.iter().map(String::as_str).collect::<Vec<_>>())
    }

    fn start_with(port: u16, args: &[&str]) -> PrivateRedis {
        let child = Command::new("redis-server")
            .args(args)
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server on PATH");
        wait_port(port, true);
        PrivateRedis { port, child }
    }

    /// Its URL.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills the server and waits until its port is closed.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        wait_port(self.port, false);
    }

    /// Connections the server has accepted so far (`INFO stats`).
    pub fn connections_received(&self) -> u64 {
        let client = redis::Client::open(self.url()).unwrap();
        let mut conn = client.get_connection().unwrap();
        let info: String = redis::cmd("INFO").arg("stats").query(&mut conn).unwrap();
        info.lines()
            .find_map(|l| l.strip_prefix("total_connections_received:"))
            .and_then(|n| n.trim().parse().ok())
            .expect("total_connections_received in INFO stats")
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
