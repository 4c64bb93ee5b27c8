//! The server's limits (`[server]`): slow-header, silent and byte-by-byte h2-preface
//! connections closed by the header-read timeout while requests still answer (the real
//! binary, 2,000 connections), an answered keep-alive connection by the idle timeout, the
//! connection cap (new connections wait, open ones are served), the body-read timeout (408),
//! the head size limit (431), the accept back-off when file descriptors run out, and the
//! admin listener.

use crate::common;

use common::harness::{ADMIN_TOKEN, Options, TestGateway};
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

/// An HTTP/1.1 head that never ends (a slow-header client's).
fn slow_head() -> Vec<u8> {
    format!("POST /v1/chat/completions HTTP/1.1\r\nhost: gw\r\nx-slow: {}", "a".repeat(200)).into_bytes()
}

/// The h2 client preface: sent byte by byte, hyper-util's `auto` cannot yet tell the version.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Sends one byte of `head` (cycled) every `every` until the server closes the connection;
/// returns how long that took (`None`: still open after `give_up`).
async fn trickle(mut stream: TcpStream, head: Vec<u8>, every: Duration, give_up: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut buf = [0u8; 1024];
    for byte in head.iter().cycle() {
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

/// How long each connection of a group lived: all must have been closed by the 3 s
/// header-read timeout (after it, and well before the 60 s idle timeout).
async fn closed_by_the_header_timeout(group: &str, tasks: Vec<tokio::task::JoinHandle<Option<Duration>>>) {
    let mut lived = Vec::new();
    for task in tasks {
        lived.push(task.await.unwrap().unwrap_or_else(|| panic!("a {group} connection was never closed")));
    }
    let (first, last) = (lived.iter().min().unwrap(), lived.iter().max().unwrap());
    println!("{} {group} connections closed after {first:?} .. {last:?}", lived.len());
    assert!(*first >= Duration::from_millis(2_500), "a {group} connection closed before the 3 s timeout: {first:?}");
    assert!(*last < Duration::from_secs(10), "the header-read timeout let a {group} connection live {last:?}");
}

/// The public port's slow and silent clients: with the idle timeout at 60 s only the 3 s
/// header-read timeout can close them within the test — slow HTTP/1.1 heads, connections
/// that never send a byte, and h2 prefaces sent a byte a second (the last two before
/// hyper-util has picked a protocol, so no hyper timer runs for them).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn slow_and_silent_connections_are_closed_by_the_header_timeout_while_requests_still_answer() {
    const SLOW: usize = 2_000;
    const SILENT: usize = 50;
    const H2_SLOW: usize = 20;
    let mock = mock().await;
    let (db, owner) = common::harness::owner(&mock.base_url()).await;
    let options = Options {
        server_toml: "header_read_timeout_secs = 3\nidle_timeout_secs = 60\nmax_connections = 5000".into(),
        ..Options::default()
    };
    let process = GatewayProcess::start(&mock.base_url(), &db.url, &options).await;
    let addr = process.url.trim_start_matches("http://").to_string();
    let (every, give_up) = (Duration::from_secs(1), Duration::from_secs(20));

    let opened = Instant::now();
    let mut slow = Vec::new();
    for _ in 0..SLOW {
        let stream = TcpStream::connect(&addr).await.expect("connect");
        slow.push(tokio::spawn(trickle(stream, slow_head(), every, give_up)));
    }
    let mut silent = Vec::new();
    for _ in 0..SILENT {
        let mut stream = TcpStream::connect(&addr).await.expect("connect");
        silent.push(tokio::spawn(async move {
            let started = Instant::now();
            let _ = tokio::time::timeout(give_up, stream.read(&mut [0u8; 64])).await.ok()?;
            Some(started.elapsed())
        }));
    }
    let mut h2_slow = Vec::new();
    for _ in 0..H2_SLOW {
        let stream = TcpStream::connect(&addr).await.expect("connect");
        h2_slow.push(tokio::spawn(trickle(stream, H2_PREFACE.to_vec(), every, give_up)));
    }
    println!("{} connections opened in {:?}", SLOW + SILENT + H2_SLOW, opened.elapsed());

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
    println!("worst request next to them: {worst:?}");
    assert!(worst < Duration::from_secs(2), "a request took {worst:?} next to {SLOW} slow connections");

    closed_by_the_header_timeout("slow-header", slow).await;
    closed_by_the_header_timeout("silent", silent).await;
    closed_by_the_header_timeout("h2-preface", h2_slow).await;
    // And the gateway still serves.
    assert_eq!(post(&url, &owner.key, &CHAT).await.status, 200);
    process.stop().await;
}

/// A keep-alive connection whose request was answered is closed by the idle timeout, not by
/// the header-read timeout (that one bounds only the first head).
#[tokio::test]
async fn an_answered_keep_alive_connection_lives_until_the_idle_timeout() {
    let mock = mock().await;
    let options =
        Options { server_toml: "header_read_timeout_secs = 30\nidle_timeout_secs = 2".into(), ..Options::default() };
    let gw = TestGateway::start_with(&mock.base_url(), options).await;
    let addr = gw.url.trim_start_matches("http://").to_string();
    let mut s = TcpStream::connect(&addr).await.unwrap();
    assert!(healthz_on(&mut s, Duration::from_secs(5)).await.is_some());
    let started = Instant::now();
    assert_eq!(read_until(&mut s, "never", Duration::from_secs(10)).await, None);
    let lived = started.elapsed();
    assert!((Duration::from_millis(1_500)..Duration::from_secs(5)).contains(&lived), "idle for {lived:?}");
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

/// The binary turns transparent huge pages off for itself, so a host whose THP setting is
/// `always` does not grow its RSS in 2 MiB pages.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_runs_without_transparent_huge_pages() {
    let mock = mock().await;
    let (db, _owner) = common::harness::owner(&mock.base_url()).await;
    let process = GatewayProcess::start(&mock.base_url(), &db.url, &Options::default()).await;
    let status = std::fs::read_to_string(format!("/proc/{}/status", process.child.0.id())).unwrap();
    let thp = status.lines().find_map(|l| l.strip_prefix("THP_enabled:")).map(str::trim);
    assert_eq!(thp, Some("0"), "{status}");
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
    let (db, owner) = common::harness::owner(&mock.base_url()).await;
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
