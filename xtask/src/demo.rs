//! `cargo xtask run`: the gateway with a demo tenant, key and balance, in front of the mock
//! upstream (and real providers whose key variables are set).

use crate::{Proc, cargo, root, run};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

const MOCK_LISTEN: &str = "127.0.0.1:9100";
const DEMO_DB: &str = "xjp_demo";

/// Provider name -> (key variable, path prefix on the mock).
const PROVIDERS: &[(&str, &str, &str)] = &[
    ("openai", "OPENAI_API_KEY", ""),
    ("anthropic", "ANTHROPIC_API_KEY", ""),
    ("gemini", "GEMINI_API_KEY", ""),
    ("openrouter", "OPENROUTER_API_KEY", "/api"),
    ("perplexity", "PERPLEXITY_API_KEY", ""),
    ("xai", "XAI_API_KEY", ""),
];

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).ok().filter(|v| !v.is_empty()).unwrap_or_else(|| default.to_string())
}

/// Which providers a generated config sends to the mock upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mock<'a> {
    /// None: the real providers (the image's default config).
    Nowhere,
    /// Every provider (the compose demo: nothing depends on the machine that built it).
    All(&'a str),
    /// Those whose key variable is unset here (`cargo xtask run`).
    Unkeyed(&'a str),
}

/// Where a generated config puts things.
#[derive(Debug, Clone, Copy)]
pub struct Layout<'a> {
    pub listen: &'a str,
    pub plugins_dir: &'a str,
    /// Where the price files are (they are named relative to config/); `None`: beside the
    /// generated config.
    pub prices_dir: Option<&'a str>,
    pub state_dir: Option<&'a str>,
    pub json_logs: bool,
}

fn table<'t>(doc: &'t mut toml::Table, name: &str) -> &'t mut toml::Table {
    doc.entry(name).or_insert_with(|| toml::Table::new().into()).as_table_mut().expect("a table")
}

/// config/gateway.toml laid out per `layout`, with providers sent to the mock per `mock`.
pub fn gateway_config(layout: &Layout, mock: Mock) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(root().join("config/gateway.toml"))?;
    let mut doc: toml::Table = text.parse()?;
    let server = table(&mut doc, "server");
    server.insert("listen".into(), layout.listen.into());
    if let Some(state) = layout.state_dir {
        server.insert("state_dir".into(), state.into());
    }
    table(&mut doc, "plugins").insert("dir".into(), layout.plugins_dir.into());
    if layout.json_logs {
        table(&mut doc, "log").insert("format".into(), "json".into());
    }
    // Price files are named relative to config/; the generated config lives elsewhere.
    if let Some(dir) = layout.prices_dir
        && let Some(files) = doc.get_mut("catalog").and_then(|c| c.get_mut("files")).and_then(|f| f.as_array_mut())
    {
        for f in files.iter_mut() {
            if let Some(rel) = f.as_str() {
                *f = format!("{dir}/{rel}").into();
            }
        }
    }
    let providers =
        doc.get_mut("providers").and_then(|p| p.as_table_mut()).ok_or_else(|| anyhow::anyhow!("no [providers]"))?;
    for (name, key_var, prefix) in PROVIDERS {
        let Some(p) = providers.get_mut(*name).and_then(|p| p.as_table_mut()) else { continue };
        let mock_base = match mock {
            Mock::Nowhere => continue,
            Mock::All(base) => base,
            Mock::Unkeyed(_) if std::env::var(key_var).is_ok_and(|v| !v.is_empty()) => {
                eprintln!("provider {name}: real upstream ({key_var} is set)");
                continue;
            }
            Mock::Unkeyed(base) => {
                eprintln!("provider {name}: mock upstream at {base} (set {key_var} to use the real one)");
                base
            }
        };
        p.insert("base_url".into(), format!("{mock_base}{prefix}").into());
        p.insert("auth".into(), "none".into());
        p.remove("credential_env");
    }
    Ok(toml::to_string(&doc)?)
}

fn ensure_database(admin_url: &str) -> anyhow::Result<()> {
    let exists = Command::new("psql")
        .args([admin_url, "-tAc", &format!("SELECT 1 FROM pg_database WHERE datname = '{DEMO_DB}'")])
        .output()?;
    if !String::from_utf8_lossy(&exists.stdout).contains('1') {
        run(Command::new("psql").args([admin_url, "-qc", &format!("CREATE DATABASE {DEMO_DB}")]))?;
    }
    Ok(())
}

fn start_mock() -> anyhow::Result<(Proc, String)> {
    let mut child = Command::new(root().join("target/debug/xjp-mock-upstream"))
        .args(["--listen", MOCK_LISTEN, "--scenarios"])
        .arg(root().join("fixtures/mock-scenarios.json"))
        .stdout(Stdio::piped())
        .spawn()?;
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("piped")).read_line(&mut line)?;
    let base = line
        .trim()
        .strip_prefix("listening on ")
        .ok_or_else(|| anyhow::anyhow!("mock upstream said: {line}"))?
        .to_string();
    Ok((Proc(child), base))
}

/// Builds, seeds and runs everything in the foreground until Ctrl-C.
pub fn run_demo() -> anyhow::Result<()> {
    crate::services::ensure_running()?;
    crate::plugins::build_all()?;
    run(cargo().args(["build", "--quiet", "-p", "xjp-gateway", "-p", "xjp-mock-upstream"]))?;
    let admin_url = env_or("XJP_PG_ADMIN_URL", "postgres://postgres@127.0.0.1:5432/postgres");
    ensure_database(&admin_url)?;
    let database_url = env_or("DATABASE_URL", &format!("postgres://postgres@127.0.0.1:5432/{DEMO_DB}"));
    let admin_token = env_or("XJP_ADMIN_TOKEN", "xjp-demo-admin-token");
    let listen = env_or("XJP_LISTEN", "127.0.0.1:8080");
    let (_mock, mock_base) = start_mock()?;
    let dir = root().join("target/demo");
    std::fs::create_dir_all(&dir)?;
    let config = dir.join("gateway.toml");
    let plugins = root().join("target/plugins").display().to_string();
    let prices = root().join("config").display().to_string();
    let layout =
        Layout { listen: &listen, plugins_dir: &plugins, prices_dir: Some(&prices), state_dir: None, json_logs: false };
    std::fs::write(&config, gateway_config(&layout, Mock::Unkeyed(&mock_base))?)?;
    let gateway = root().join("target/debug/xjp-gateway");
    let seeded = Command::new(&gateway)
        .arg("seed-demo")
        .arg("--config")
        .arg(&config)
        .env("DATABASE_URL", &database_url)
        .output()?;
    anyhow::ensure!(seeded.status.success(), "seed-demo failed: {}", String::from_utf8_lossy(&seeded.stderr));
    let seeded = String::from_utf8_lossy(&seeded.stdout);
    let key = seeded.lines().find_map(|l| l.strip_prefix("demo key:")).map(str::trim).unwrap_or("?").to_string();
    eprintln!("\n{seeded}admin token: {admin_token}\n");
    eprintln!(
        "try:\n  curl -s http://{listen}/v1/chat/completions -H 'Authorization: Bearer {key}' \\\n    -H 'content-type: application/json' -d '{{\"model\":\"gpt-4o-mini\",\"messages\":[{{\"role\":\"user\",\"content\":\"hi\"}}]}}'\n"
    );
    let status = Command::new(&gateway)
        .arg("serve")
        .arg("--config")
        .arg(&config)
        .env("DATABASE_URL", &database_url)
        .env("XJP_ADMIN_TOKEN", &admin_token)
        .status()?;
    anyhow::ensure!(status.success(), "gateway exited with {status}");
    Ok(())
}
