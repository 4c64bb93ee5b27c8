//! Operability of a running gateway: JSON log lines, OpenTelemetry spans exported over
//! OTLP/HTTP to a collector (a test server here), the spool directory locked against a
//! second process, and config reloads on a Kubernetes ConfigMap swap (`..data` symlink).

use crate::common;

use common::harness::{Options, PROVIDER_KEY, TestDb, TestGateway, config_toml_with, redis_url};
use common::money::{CHAT, ChildGuard};
use common::scenarios::mock;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// `xjp-gateway serve` on `config`, stdout and stderr piped.
fn spawn(config: &Path, database_url: &str) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_xjp-gateway"))
        .args(["serve", "--config"])
        .arg(config)
        .env_remove("RUST_LOG")
        .env("TEST_DATABASE_URL", database_url)
        .env("TEST_REDIS_URL", redis_url())
        .env("MOCK_PROVIDER_KEY", PROVIDER_KEY)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn write_config(dir: &Path, mock_base: &str, extra: &str) -> std::path::PathBuf {
    let plugins = common::root().join("target/plugins").display().to_string();
    let cache = common::root().join("target/plugin-cache").display().to_string();
    let options = Options { extra_toml: extra.to_string(), ..Options::default() };
    let path = dir.join("gateway.toml");
    std::fs::write(&path, config_toml_with(mock_base, &plugins, &cache, &options)).unwrap();
    path
}

/// The first stdout line's URL (`xjp-gateway listening on http://...`).
fn listening(child: &mut ChildGuard) -> String {
    let mut line = String::new();
    BufReader::new(child.0.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let url = line.trim().trim_start_matches("xjp-gateway listening on ").to_string();
    assert!(url.starts_with("http://"), "gateway did not start: {line:?}");
    url
}

/// What a collector received: (path, content type, body) per request.
type Received = Arc<Mutex<Vec<(String, String, Vec<u8>)>>>;

/// A minimal OTLP/HTTP collector: answers every POST with 200 and keeps what it got.
async fn collector() -> (String, Received) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/v1/traces", listener.local_addr().unwrap());
    let received: Received = Arc::default();
    let store = received.clone();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let store = store.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                loop {
                    // One request: headers, then content-length bytes.
                    let head_end = loop {
                        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            break i + 4;
                        }
                        let mut chunk = [0u8; 8192];
                        match conn.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    };
                    let head = String::from_utf8_lossy(&buf[..head_end]).to_lowercase();
                    let header = |name: &str| {
                        head.lines().find_map(|l| l.strip_prefix(&format!("{name}:")).map(|v| v.trim().to_string()))
                    };
                    let len: usize = header("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
                    while buf.len() < head_end + len {
                        let mut chunk = [0u8; 8192];
                        match conn.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let path = head.split_whitespace().nth(1).unwrap_or("").to_string();
                    let body = buf[head_end..head_end + len].to_vec();
                    store.lock().unwrap().push((path, header("content-type").unwrap_or_default(), body));
                    buf.drain(..head_end + len);
                    let ok = b"HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n";
                    if conn.write_all(ok).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (url, received)
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_and_otlp_trace_export() {
    let mock = mock().await;
    let db = TestDb::create().await;
    let (endpoint, received) = collector().await;
    let dir = tempfile::tempdir().unwrap();
    let extra = format!(
        "[log]\nformat = \"json\"\nfilter = \"info\"\n\n[otel]\nenabled = true\nendpoint = \"{endpoint}\"\nservice_name = \"xjp-test\"\n"
    );
    let config = write_config(dir.path(), &mock.base_url(), &extra);
    let mut child = ChildGuard(spawn(&config, &db.url));
    let url = listening(&mut child);
    let stderr = child.0.stderr.take().unwrap();
    let lines = std::thread::spawn(move || BufReader::new(stderr).lines().map_while(Result::ok).collect::<Vec<_>>());

    // A key for the request (the process shares the database).
    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
    let tenant = xjp_gateway::db::tenants::create(&pool, "otel").await.unwrap();
    let (_, key) = xjp_gateway::db::keys::create(&pool, tenant.id, None).await.unwrap();
    let kind = xjp_gateway::db::credits::CreditKind::TopUp;
    xjp_gateway::db::credits::insert(&pool, tenant.id, "c", kind, 1_000_000_000, None).await.unwrap();
    let r = common::http::post(&format!("{url}/v1/chat/completions"), &key, &CHAT).await;
    assert_eq!(r.status, 200, "{}", r.text());
    pool.close().await;

    // SIGTERM: the shutdown exports what the batch still holds.
    let _ = Command::new("kill").args(["-TERM", &child.0.id().to_string()]).status();
    let status = tokio::task::spawn_blocking(move || child.0.wait()).await.unwrap().unwrap();
    assert!(status.success(), "{status}");
    let lines = lines.join().unwrap();

    // Every log line is one JSON object with a level, a target and a timestamp.
    assert!(!lines.is_empty());
    for line in &lines {
        let v: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(v["level"].is_string() && v["target"].is_string() && v["timestamp"].is_string(), "{line}");
    }
    let listening_line = lines.iter().find(|l| l.contains("xjp-gateway listening")).expect("the listening line");
    let v: serde_json::Value = serde_json::from_str(listening_line).unwrap();
    assert_eq!(v["level"], "INFO");
    assert!(v["addr"].as_str().is_some_and(|a| url.ends_with(a)), "{v}");
    assert!(!lines.iter().any(|l| l.contains(PROVIDER_KEY) || l.contains(&key)), "a secret in the logs");

    // The collector got OTLP protobuf with the service name and the request's spans.
    let got = received.lock().unwrap().clone();
    assert!(!got.is_empty(), "nothing was exported");
    for (path, content_type, _) in &got {
        assert_eq!((path.as_str(), content_type.as_str()), ("/v1/traces", "application/x-protobuf"));
    }
    let body: Vec<u8> = got.into_iter().flat_map(|(_, _, b)| b).collect();
    for name in ["xjp-test", "request", "upstream", "reserve"] {
        assert!(contains(&body, name), "no `{name}` in the exported spans");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_process_on_the_same_spool_directory_refuses_to_start() {
    let mock = mock().await;
    let db = TestDb::create().await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &mock.base_url(), "");
    let mut first = ChildGuard(spawn(&config, &db.url));
    listening(&mut first);

    let second = spawn(&config, &db.url);
    let pid = second.id().to_string();
    let waited = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::task::spawn_blocking(move || second.wait_with_output().unwrap()),
    )
    .await;
    let Ok(output) = waited else {
        let _ = Command::new("kill").args(["-KILL", &pid]).status();
        panic!("the second gateway neither started nor exited within 60 s");
    };
    let output = output.unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "the second gateway started: {stderr}");
    let pid = first.0.id().to_string();
    assert!(
        stderr.contains("is in use by another process") && stderr.contains(&pid) && stderr.contains("spool"),
        "{stderr}"
    );
}

#[tokio::test]
async fn a_configmap_swap_reloads_the_config() {
    let mock = mock().await;
    let gw = TestGateway::start(&mock.base_url()).await;
    // Lay the config out as a mounted ConfigMap: gateway.toml -> ..data/gateway.toml,
    // ..data -> ..<timestamp>.
    let dir = gw.dir.path();
    let path = dir.join("gateway.toml");
    let original = std::fs::read_to_string(&path).unwrap();
    std::fs::create_dir(dir.join("..2026_11_30_01")).unwrap();
    std::fs::write(dir.join("..2026_11_30_01/gateway.toml"), &original).unwrap();
    std::os::unix::fs::symlink("..2026_11_30_01", dir.join("..data")).unwrap();
    std::fs::remove_file(&path).unwrap();
    std::os::unix::fs::symlink("..data/gateway.toml", &path).unwrap();
    let _watch = gw.gw.watch_config().unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let chat = |model: &'static str| {
        let (url, key) = (format!("{}/v1/chat/completions", gw.url), gw.key.clone());
        async move { common::http::post(&url, &key, &format!(r#"{{"model":"{model}","messages":[]}}"#)).await.status }
    };
    assert_eq!(chat("configmap-model").await, 404);

    // The kubelet's update: a new timestamped directory, a new `..data` renamed over the old
    // one, the old directory removed. `gateway.toml` itself is never touched.
    let added = format!(
        "{original}\n[[models]]\nname = \"configmap-model\"\nprovider = \"openai\"\nupstream_model = \"gpt-4o-mini-2024-07-18\"\nprice = {{ input = \"1\", output = \"2\" }}\n"
    );
    std::fs::create_dir(dir.join("..2026_11_30_02")).unwrap();
    std::fs::write(dir.join("..2026_11_30_02/gateway.toml"), added).unwrap();
    std::os::unix::fs::symlink("..2026_11_30_02", dir.join("..data_tmp")).unwrap();
    std::fs::rename(dir.join("..data_tmp"), dir.join("..data")).unwrap();
    std::fs::remove_dir_all(dir.join("..2026_11_30_01")).unwrap();

    let deadline = Instant::now() + Duration::from_secs(5);
    while chat("configmap-model").await != 200 {
        assert!(Instant::now() < deadline, "the swapped config was not loaded");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(chat("gpt-4o-mini").await, 200);
}

/// With `server.state_dir` set, the gateway writes there and nowhere else: the config's
/// directory (read-only in a container) gets nothing.
#[tokio::test]
async fn everything_the_gateway_writes_is_under_the_state_dir() {
    let mock = mock().await;
    let db = TestDb::create().await;
    let config_dir = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let path = write_config(config_dir.path(), &mock.base_url(), "");
    let text = std::fs::read_to_string(&path).unwrap();
    let cache_line = text.lines().find(|l| l.starts_with("cache_dir")).unwrap().to_string();
    let text = text.replace(&cache_line, "").replacen(
        "[server]\n",
        &format!("[server]\nstate_dir = \"{}\"\n", state.path().display()),
        1,
    );
    std::fs::write(&path, text).unwrap();
    let mut child = ChildGuard(spawn(&path, &db.url));
    listening(&mut child);
    let _ = Command::new("kill").args(["-TERM", &child.0.id().to_string()]).status();
    let _ = tokio::task::spawn_blocking(move || child.0.wait()).await;

    let names = |dir: &Path| -> Vec<String> {
        let mut n: Vec<String> =
            std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        n.sort();
        n
    };
    assert_eq!(names(config_dir.path()), ["gateway.toml"], "the gateway wrote beside its config");
    assert_eq!(names(state.path()), ["plugin-cache", "spool"]);
    assert_eq!(names(&state.path().join("spool")), ["ledger.lock", "ledger.spool"]);
    assert!(!names(&state.path().join("plugin-cache")).is_empty(), "no precompiled plugin was cached");
}
