//! The results of `cargo xtask bench e2e`: per target, the figures of each phase; printed as
//! a markdown table (absolute, then each gateway against direct and against billing off)
//! and written as JSON.

use crate::bench_load::{Sample, StreamTimes};
use serde_json::{Map, Value, json};
use std::time::Duration;

/// One phase of one target: its requests, and the gateway's CPU time and run-queue wait
/// (runnable, but another process had its CPU) meanwhile.
#[derive(Debug, Default)]
pub struct Phase {
    pub s: Sample,
    /// `utime + stime` (tick-sampled).
    pub ticks: Option<Duration>,
    /// Time on a CPU, summed over threads (exact).
    pub cpu: Option<Duration>,
    pub wait: Option<Duration>,
}

impl Phase {
    fn per_request(&self, d: Option<Duration>) -> Option<f64> {
        let n = self.s.latencies_us.len();
        (n > 0).then_some(d?.as_secs_f64() * 1e6 / n as f64)
    }

    fn pct(&self, p: f64) -> Option<f64> {
        pct(&self.s.latencies_us, p)
    }
}

/// What one target measured across the phases.
#[derive(Debug, Default)]
pub struct Measured {
    pub name: &'static str,
    pub c1: Phase,
    pub low: Phase,
    pub sat: Phase,
    pub stream: StreamTimes,
    /// CPU the gateway used with no request running (ms per second).
    pub idle_ms_per_s: Option<f64>,
    /// Redis commands and Postgres commits while this target ran, and its requests then.
    pub redis_cmds: u64,
    pub pg_commits: u64,
    /// CPU time of Redis and of Postgres (all its processes) meanwhile.
    pub redis_cpu: std::time::Duration,
    pub pg_cpu: std::time::Duration,
    pub counted: u64,
}

/// The `p`th percentile of unsorted values.
pub fn pct(values: &[u32], p: f64) -> Option<f64> {
    let mut v = values.to_vec();
    v.sort_unstable();
    let i = ((p / 100.0) * (v.len().checked_sub(1)? as f64)).round() as usize;
    v.get(i).map(|x| f64::from(*x))
}

/// How a row compares: lower-is-better amounts (shown as a difference and a ratio) or
/// rates (a ratio).
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Amount,
    Rate,
}

type Metric = (&'static str, Kind, fn(&Measured) -> Option<f64>);

const METRICS: &[Metric] = &[
    ("c=1 p50 (µs)", Kind::Amount, |m| m.c1.pct(50.0)),
    ("c=1 p90 (µs)", Kind::Amount, |m| m.c1.pct(90.0)),
    ("c=1 p99 (µs)", Kind::Amount, |m| m.c1.pct(99.0)),
    ("c=1 RPS", Kind::Rate, |m| Some(m.c1.s.rps())),
    ("c=1 gateway CPU µs/req", Kind::Amount, |m| m.c1.per_request(m.c1.cpu)),
    ("c=1 gateway utime+stime µs/req", Kind::Amount, |m| m.c1.per_request(m.c1.ticks)),
    ("c=1 gateway run-queue wait µs/req", Kind::Amount, |m| m.c1.per_request(m.c1.wait)),
    ("fixed low rate p50 (µs)", Kind::Amount, |m| m.low.pct(50.0)),
    ("fixed low rate p99 (µs)", Kind::Amount, |m| m.low.pct(99.0)),
    ("fixed low rate max (µs)", Kind::Amount, |m| m.low.pct(100.0)),
    ("fixed low rate gateway CPU µs/req", Kind::Amount, |m| m.low.per_request(m.low.cpu)),
    ("fixed low rate utime+stime µs/req", Kind::Amount, |m| m.low.per_request(m.low.ticks)),
    ("fixed low rate run-queue wait µs/req", Kind::Amount, |m| m.low.per_request(m.low.wait)),
    ("saturation RPS", Kind::Rate, |m| Some(m.sat.s.rps())),
    ("saturation p50 (µs)", Kind::Amount, |m| m.sat.pct(50.0)),
    ("saturation p99 (µs)", Kind::Amount, |m| m.sat.pct(99.0)),
    ("saturation gateway CPU µs/req", Kind::Amount, |m| m.sat.per_request(m.sat.cpu)),
    ("saturation utime+stime µs/req", Kind::Amount, |m| m.sat.per_request(m.sat.ticks)),
    ("stream headers p50 (µs)", Kind::Amount, |m| pct(&m.stream.headers_us, 50.0)),
    ("stream first byte p50 (µs)", Kind::Amount, |m| pct(&m.stream.first_byte_us, 50.0)),
    ("stream first byte p99 (µs)", Kind::Amount, |m| pct(&m.stream.first_byte_us, 99.0)),
    ("idle gateway CPU (ms/s)", Kind::Amount, |m| m.idle_ms_per_s),
    ("Redis commands/req", Kind::Amount, |m| (m.counted > 0).then(|| m.redis_cmds as f64 / m.counted as f64)),
    ("Postgres commits/req", Kind::Amount, |m| (m.counted > 0).then(|| m.pg_commits as f64 / m.counted as f64)),
    ("Redis CPU µs/req", Kind::Amount, |m| {
        (m.counted > 0).then(|| m.redis_cpu.as_secs_f64() * 1e6 / m.counted as f64)
    }),
    ("Postgres CPU µs/req", Kind::Amount, |m| {
        (m.counted > 0).then(|| m.pg_cpu.as_secs_f64() * 1e6 / m.counted as f64)
    }),
];

fn fmt(v: Option<f64>) -> String {
    match v {
        None => "–".into(),
        Some(v) if v.abs() >= 100.0 => format!("{v:.0}"),
        Some(v) => format!("{v:.2}"),
    }
}

fn compare(kind: Kind, a: Option<f64>, base: Option<f64>) -> String {
    let (Some(a), Some(b)) = (a, base) else { return "–".into() };
    let ratio = if b != 0.0 { format!("×{:.2}", a / b) } else { String::new() };
    match kind {
        Kind::Rate => ratio,
        Kind::Amount => format!("{:+.0} ({ratio})", a - b).replace(" ()", ""),
    }
}

/// The markdown table: direct, billing off, full billing; then off − direct, on − direct,
/// on − off (differences with ratios; rates as ratios).
pub fn table(ms: &[Measured]) -> String {
    let by = |name: &str| ms.iter().find(|m| m.name == name);
    let (direct, off, on) = (by("direct"), by("billing-off"), by("billing-on"));
    let mut out = String::from(
        "| metric | direct | billing off | full billing | off vs direct | full vs direct | full vs off |\n|---|---:|---:|---:|---:|---:|---:|\n",
    );
    for (label, kind, f) in METRICS {
        let v = |m: Option<&Measured>| m.and_then(f);
        let (d, o, n) = (v(direct), v(off), v(on));
        let cells = [fmt(d), fmt(o), fmt(n), compare(*kind, o, d), compare(*kind, n, d), compare(*kind, n, o)];
        out.push_str(&format!("| {label} | {} |\n", cells.join(" | ")));
    }
    out
}

fn errors(m: &Measured) -> u64 {
    m.c1.s.errors + m.low.s.errors + m.sat.s.errors + m.stream.errors
}

/// Every figure, per target, plus the run's settings.
pub fn json(ms: &[Measured], settings: Value) -> Value {
    let mut targets = Map::new();
    for m in ms {
        let mut fields = Map::new();
        for (label, _, f) in METRICS {
            fields.insert((*label).into(), f(m).map_or(Value::Null, |v| json!(v)));
        }
        fields.insert("errors".into(), json!(errors(m)));
        fields.insert("c1_requests".into(), json!(m.c1.s.latencies_us.len()));
        fields.insert("saturation_requests".into(), json!(m.sat.s.latencies_us.len()));
        fields.insert("low_rate_slow_ms_us".into(), json!(m.low.s.slow));
        targets.insert(m.name.into(), Value::Object(fields));
    }
    json!({ "settings": settings, "targets": targets, "table": table(ms) })
}

/// Requests that failed, per target (a run with errors is reported, not trusted).
pub fn error_summary(ms: &[Measured]) -> Option<String> {
    let bad: Vec<String> = ms.iter().filter(|m| errors(m) > 0).map(|m| format!("{}: {}", m.name, errors(m))).collect();
    (!bad.is_empty()).then(|| format!("failed requests: {}", bad.join(", ")))
}
