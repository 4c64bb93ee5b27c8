//! The server's limits (`[server]`): slow and idle connections closed by the header-read and
//! idle timeouts while requests still answer (the real binary, 2,000 connections), the
//! connection cap (new connections wait, open ones are served), the body-read timeout (408),
//! the head size limit (431), the accept back-off when file descriptors run out, and the
//! admin listener.

use crate::common;

use common::harness::{ADMIN_TOKEN, Options, TestDb, TestGateway};
use common::http::{metric, post, send};
use common::money::CHAT;
use common::process::GatewayProcess;
use common::scenarios::mock;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Reads from `stream` until it holds `needle`; `None` if the server closes or `within`
/// passes first.
async fn read_until(stream: &mut TcpStream, needle: &str, within: Duration) -> Option<String> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + within;
    while !String::from_utf8_lossy(&got).contains(needle) {
        let left = deadline.checked_duration_since(Instant::now())?;
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
    let text = String::from_utf8_lossy(&got).into_owned();
    text.contains(needle).then_some(text)
}

/// `GET /healthz` on an open keep-alive connection.
async fn healthz_on(stream: &mut TcpStream, within: Duration) -> Option<String> {
    stream.write_all(b"GET /healthz HTTP/1.1\r\nhost: gw\r\n\r\n").await.ok()?;
    read_until(stream, r#"{"status":"ok"}"#, within).await
}

/// Sends one byte of a request head every `every` until the server closes the connection;
/// returns how long that took (`None`: still open after `give_up`).
async fn trickle(mut stream: TcpStream, every: Duration, give_up: Duration) -> Option<Duration> {
    let head = format!("POST /v1/chat/completions HTTP/1.1\r\nhost: gw\r\nx-slow: {}", "a".repeat(200));
    let started = Instant::now();
    let mut buf = [0u8; 1024];
    for byte in head.as_bytes().iter().cycle() {
        if started.elapsed() > give_up {
            return None;
        }
        if stream.write_all(&[*byte]).await.is_err() {
            return Some(started.elapsed());
        }
        // Between bytes, watch for the close (a 408 may come first).
        let wait_until = Instant::now() + every;
        while let Some(left) = wait_until.checked_duration_since(Instant::now()) {
            match tokio::time::timeout(left, stream.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return Some(started.elapsed()),
                Ok(Ok(_)) => continue,
                Err(_) => break,
            }
        }
    }
    unreachable!("the head cycles forever")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn slow_and_idle_connections_are_closed_while_requests_still_answer() {
    const SLOW: usize = 2_000;
    const SILENT: usize = 50;
    let mock = mock().await;
    let db = TestDb::create().await;
    let owner =
        TestGateway::start_with(&mock.base_url(), Options { database_url: Some(db.url.clone()), ..Options::default() })
            .await;
    let options = Options {
        server_toml: "header_read_timeout_secs = 3\nidle_timeout_secs = 3\nmax_connections = 5000".into(),
        ..Options::default()
    };
    let process = GatewayProcess::start(&mock.base_url(), &db.url, &options).await;
    let addr = process.url.trim_start_matches("http://").to_string();

    let opened = Instant::now();
    let mut slow = Vec::new();
    for _ in 0..SLOW {
        let stream = TcpStream::connect(&addr).await.expect("connect");
        slow.push(tokio::spawn(trickle(stream, Duration::from_millis(1_000), Duration::from_secs(20))));
    }
    let mut silent = Vec::new();
    for _ in 0..SILENT {
        let mut stream = TcpStream::connect(&addr).await.expect("connect");
        silent.push(tokio::spawn(async move {
            let started = Instant::now();
            read_until(&mut stream, "never", Duration::from_secs(20)).await;
            started.elapsed()
        }));
    }
    let opening = opened.elapsed();

    // While they trickle, normal requests answer quickly.
    let mut worst = Duration::ZERO;
    let url = format!("{}/v1/chat/completions", process.url);
    for _ in 0..20 {
        let t = Instant::now();
        let r = post(&url, &owner.key, &CHAT).await;
        assert_eq!(r.status, 200, "{}", r.text());
        worst = worst.max(t.elapsed());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(worst < Duration::from_secs(2), "a request took {worst:?} next to {SLOW} slow connections");

    let mut closed_after = Vec::new();
    for task in slow {
        closed_after.push(task.await.unwrap().expect("a slow connection was never closed"));
    }
    for task in silent {
        let after = task.await.unwrap();
        assert!(after < Duration::from_secs(10), "a silent connection stayed open {after:?}");
        closed_after.push(after);
    }
    let (first, last) = (closed_after.iter().min().unwrap(), closed_after.iter().max().unwrap());
    println!(
        "{SLOW} slow + {SILENT} silent connections opened in {opening:?}; closed after {first:?} .. {last:?}; worst request {worst:?}"
    );
    assert!(*first >= Duration::from_millis(2_500), "closed before the 3 s timeout: {first:?}");
    assert!(*last < Duration::from_secs(10), "the timeout let one live {last:?}");
    // And the gateway still serves.
    assert_eq!(post(&url, &owner.key, &CHAT).await.status, 200);
    process.stop().await;
}

#[tokio::test]
async fn connections_beyond_the_cap_wait_while_open_ones_are_served() {
    let mock = mock().await;
    let options = Options { server_toml: "max_connections = 3".into(), ..Options::default() };
    let gw = TestGateway::start_with(&mock.base_url(), options).await;
    let addr = gw.url.trim_start_matches("http://").to_string();
    let mut open = Vec::new();
    for _ in 0..3 {
        let mut s = TcpStream::connect(&addr).await.unwrap();
        assert!(healthz_on(&mut s, Duration::from_secs(5)).await.is_some());
        open.push(s);
    }
    // The fourth is accepted by the kernel but not served while three are open.
    let mut waiting = TcpStream::connect(&addr).await.unwrap();
    let pending = tokio::spawn(async move {
        let started = Instant::now();
        let answered = healthz_on(&mut waiting, Duration::from_secs(10)).await;
        (answered, started.elapsed())
    });
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(!pending.is_finished(), "a connection beyond the cap was served");
    for s in open.iter_mut() {
        assert!(healthz_on(s, Duration::from_secs(2)).await.is_some(), "an open connection is still served");
    }
    drop(open.pop());
    let (answered, after) = pending.await.unwrap();
    assert!(answered.is_some(), "served once a connection closed");
    assert!(after >= Duration::from_millis(600), "{after:?}");
}

#[tokio::test]
async fn a_body_that_does_not_arrive_in_time_gets_408_and_a_huge_head_431() {
    let mock = mock().await;
    let options = Options { server_toml: "body_read_timeout_secs = 1".into(), ..Options::default() };
    let gw = TestGateway::start_with(&mock.base_url(), options).await;
    let addr = gw.url.trim_start_matches("http://").to_string();
    let mut s = TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "POST /v1/messages HTTP/1.1\r\nhost: gw\r\nx-api-key: {}\r\ncontent-type: application/json\r\ncontent-length: 500\r\n\r\n{{\"model\":",
        gw.key
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let started = Instant::now();
    let mut answer = String::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_string(&mut answer)).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(
        answer.contains(r#""type":"error""#) && answer.contains("request body not received within 1 s"),
        "{answer}"
    );
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(mock.requests().is_empty());

    // The default head limit is 64 KiB.
    let mut s = TcpStream::connect(&addr).await.unwrap();
    let head = format!("GET /healthz HTTP/1.1\r\nhost: gw\r\nx-big: {}\r\n\r\n", "b".repeat(80 << 10));
    let _ = s.write_all(head.as_bytes()).await;
    let answer = read_until(&mut s, "\r\n", Duration::from_secs(5)).await.unwrap_or_default();
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer:?}");
}

/// CPU seconds (user + system) a process has used.
fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat.rsplit_once(')').unwrap().1.split_whitespace().collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / 100.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_file_descriptors_the_accept_loop_backs_off_instead_of_spinning() {
    let mock = mock().await;
    let db = TestDb::create().await;
    let owner =
        TestGateway::start_with(&mock.base_url(), Options { database_url: Some(db.url.clone()), ..Options::default() })
            .await;
    let process = GatewayProcess::start(&mock.base_url(), &db.url, &Options::default()).await;
    let url = format!("{}/v1/chat/completions", process.url);
    assert_eq!(post(&url, &owner.key, &CHAT).await.status, 200);
    let pid = process.child.0.id();
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).unwrap().count();
    let limit = fds + 20;
    let ok = std::process::Command::new("prlimit")
        .args([format!("--pid={pid}"), format!("--nofile={limit}:")])
        .status()
        .unwrap();
    assert!(ok.success());
    // More connections than descriptors left: accept fails with EMFILE while they are open.
    let addr = process.url.trim_start_matches("http://").to_string();
    let mut held = Vec::new();
    for _ in 0..60 {
        held.push(TcpStream::connect(&addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = cpu_secs(pid);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let used = cpu_secs(pid) - before;
    println!("gateway CPU over 3 s out of descriptors: {used:.2} s");
    assert!(used < 1.0, "the accept loop spins: {used:.2} CPU seconds in 3 s");
    drop(held);
    let ok = std::process::Command::new("prlimit")
        .args([format!("--pid={pid}"), format!("--nofile={}:", fds + 1000)])
        .status()
        .unwrap();
    assert!(ok.success());
    // Served again within the back-off (1 s at most).
    let started = Instant::now();
    assert_eq!(post(&url, &owner.key, &CHAT).await.status, 200);
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
    let errors = metric(&process.url, "xjp_accept_errors_total{listener=\"public\"}").await;
    assert!((1.0..200.0).contains(&errors), "{errors} accept errors in ~3.5 s (back-off up to 1 s)");
    process.stop().await;
}

#[tokio::test]
async fn ops_endpoints_live_on_the_admin_listener_only() {
    let mock = mock().await;
    let options = Options { server_toml: "admin_listen = \"127.0.0.1:0\"".into(), ..Options::default() };
    let gw = TestGateway::start_with(&mock.base_url(), options).await;
    let admin = format!("http://{}", gw.server.as_ref().unwrap().admin_addr.expect("an admin listener"));
    let token = format!("Bearer {ADMIN_TOKEN}");
    let auth = [("authorization", token.as_str())];
    for path in ["/metrics", "/internal/plugins", "/internal/openapi.json", "/admin/tenants/x/keys"] {
        let r = send("GET", &format!("{}{path}", gw.url), &auth, "").await;
        assert_eq!(r.status, 404, "{path} on the public port");
        assert!(r.json()["error"]["message"].as_str().unwrap().contains("no route"), "{}", r.text());
    }
    assert_eq!(send("GET", &format!("{admin}/metrics"), &[], "").await.status, 200);
    assert_eq!(send("GET", &format!("{admin}/internal/plugins"), &auth, "").await.status, 200);
    assert_eq!(send("GET", &format!("{admin}/internal/plugins"), &[], "").await.status, 403);
    for base in [&gw.url, &admin] {
        assert_eq!(send("GET", &format!("{base}/healthz"), &[], "").await.status, 200);
        assert_eq!(send("GET", &format!("{base}/readyz"), &[], "").await.status, 200);
    }
    // The proxy and the self-service reads are on the public port only.
    assert_eq!(post(&format!("{}/v1/chat/completions", gw.url), &gw.key, &CHAT).await.status, 200);
    let r = post(&format!("{admin}/v1/chat/completions"), &gw.key, &CHAT).await;
    assert_eq!(r.status, 404);
    let bearer = format!("Bearer {}", gw.key);
    let r = send("GET", &format!("{admin}/v1/billing/balance"), &[("authorization", bearer.as_str())], "").await;
    assert_eq!(r.status, 404);
    let r = send("GET", &format!("{}/v1/billing/balance", gw.url), &[("authorization", bearer.as_str())], "").await;
    assert_eq!(r.status, 200);
}
