//! Gateway processes (the real binary) for tests where the process matters.

use super::harness::{ADMIN_TOKEN, Options, PROVIDER_KEY, config_toml_with, redis_url};
use super::money::ChildGuard;

/// A running `xjp-gateway serve` process and its config directory.
pub struct GatewayProcess {
    pub url: String,
    /// The admin listener, when the config has `admin_listen`.
    pub admin_url: Option<String>,
    pub child: ChildGuard,
    pub dir: tempfile::TempDir,
}

impl GatewayProcess {
    /// Starts the binary on the test config (routed to `mock_base`, on `database_url` and
    /// the options' Redis or the shared one) and waits for its "listening" line.
    pub async fn start(mock_base: &str, database_url: &str, options: &Options) -> GatewayProcess {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gateway.toml");
        let plugins = super::root().join("target/plugins").display().to_string();
        let cache = super::root().join("target/plugin-cache").display().to_string();
        std::fs::write(&path, config_toml_with(mock_base, &plugins, &cache, options)).unwrap();
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_xjp-gateway"))
            .args(["serve", "--config"])
            .arg(&path)
            .env("TEST_DATABASE_URL", database_url)
            .env("TEST_REDIS_URL", options.redis_url.clone().unwrap_or_else(redis_url))
            .env("MOCK_PROVIDER_KEY", PROVIDER_KEY)
            .env("XJP_ADMIN_TOKEN", ADMIN_TOKEN)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut child = ChildGuard(child);
        let stdout = child.0.stdout.take().unwrap();
        let (admin_url, line) = tokio::task::spawn_blocking(move || {
            let mut reader = std::io::BufReader::new(stdout);
            let (mut admin, mut line) = (None, String::new());
            loop {
                line.clear();
                std::io::BufRead::read_line(&mut reader, &mut line).unwrap();
                match line.trim().strip_prefix("xjp-gateway admin listening on ") {
                    Some(url) => admin = Some(url.to_string()),
                    None => return (admin, line),
                }
            }
        })
        .await
        .unwrap();
        let url = line.trim().trim_start_matches("xjp-gateway listening on ").to_string();
        assert!(url.starts_with("http://"), "gateway did not start: {line:?}");
        GatewayProcess { url, admin_url, child, dir }
    }

    /// SIGTERM, then waits for the process to exit.
    pub async fn stop(self) {
        let GatewayProcess { mut child, dir, .. } = self;
        let _ = std::process::Command::new("kill").args(["-TERM", &child.0.id().to_string()]).status();
        let _ = tokio::task::spawn_blocking(move || child.0.wait()).await;
        drop(dir);
    }
}
