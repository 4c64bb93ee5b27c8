//! `cargo xtask bench e2e --phases many`: N streams open at once through a gateway (each on
//! its own connection), and the gateway's resident memory at the peak against before: all of
//! it (`VmRSS`), and its private part (`RssAnon`; the rest is file and shared pages, such as
//! a plugin instance's memory image, which `VmRSS` counts once per mapping). Run
//! it with slow chunks so the streams overlap, and a raised file limit, e.g.
//! `ulimit -n 65536; cargo xtask bench e2e --phases many --chunk-ms 100 --targets billing-on`.

use crate::bench_load::{Conn, Target};
use bytes::Bytes;
use std::time::Duration;

/// What one target did with N concurrent streams.
#[derive(Debug, Default)]
pub struct Many {
    pub name: &'static str,
    pub streams: usize,
    pub ok: usize,
    pub rss_before_mb: f64,
    pub rss_peak_mb: f64,
    pub anon_before_mb: f64,
    pub anon_peak_mb: f64,
}

/// Resident memory of `pid` in MiB: (`VmRSS`, `RssAnon`).
fn rss_mb(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        let kb = status.lines().find_map(|l| l.strip_prefix(name)).and_then(|v| v.split_whitespace().next());
        kb.and_then(|k| k.parse::<f64>().ok()).unwrap_or(0.0) / 1024.0
    };
    (field("VmRSS:"), field("RssAnon:"))
}

/// Opens `n` streams through `t` at once and samples its RSS every 20 ms until they end.
pub async fn many_streams(t: &Target, body: &Bytes, n: usize) -> anyhow::Result<Many> {
    let pid = t.pid.ok_or_else(|| anyhow::anyhow!("{}: not a gateway", t.name))?;
    let before = rss_mb(pid);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..n {
        let (t, body) = (t.clone(), body.clone());
        tasks.spawn(async move { Conn::open(&t).await?.stream(&body).await.map(|_| ()) });
    }
    let mut peak = before;
    let sample = |peak: &mut (f64, f64)| {
        let (rss, anon) = rss_mb(pid);
        *peak = (peak.0.max(rss), peak.1.max(anon));
    };
    let mut ok = 0;
    loop {
        tokio::select! {
            done = tasks.join_next() => match done {
                Some(Ok(Ok(()))) => ok += 1,
                Some(_) => {}
                None => break,
            },
            () = tokio::time::sleep(Duration::from_millis(20)) => sample(&mut peak),
        }
    }
    sample(&mut peak);
    Ok(Many {
        name: t.name,
        streams: n,
        ok,
        rss_before_mb: before.0,
        rss_peak_mb: peak.0,
        anon_before_mb: before.1,
        anon_peak_mb: peak.1,
    })
}

/// The lines printed after the table.
pub fn report(many: &[Many]) -> String {
    let mut out = String::from(
        "| concurrent streams | ok | RSS before (MiB) | RSS peak (MiB) | per stream (KiB) | private peak (MiB) | private per stream (KiB) |\n",
    );
    out.push_str("|---|---:|---:|---:|---:|---:|---:|\n");
    for m in many {
        let per = |before: f64, peak: f64| (peak - before).max(0.0) * 1024.0 / m.streams.max(1) as f64;
        out.push_str(&format!(
            "| {} × {} | {} | {:.1} | {:.1} | {:.0} | {:.1} | {:.0} |\n",
            m.name,
            m.streams,
            m.ok,
            m.rss_before_mb,
            m.rss_peak_mb,
            per(m.rss_before_mb, m.rss_peak_mb),
            m.anon_peak_mb,
            per(m.anon_before_mb, m.anon_peak_mb),
        ));
    }
    out
}
