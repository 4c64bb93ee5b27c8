//! The access line as `AccessLineLayer` writes it is the line `tracing-subscriber`'s
//! formatter wrote for the same event (timestamp aside), in text and JSON, hostile
//! strings included; other events are left to the formatter.

use super::*;
use crate::ledger::TransactionRow;
use parking_lot::Mutex;
use std::sync::Arc;
use tracing_subscriber::layer::SubscriberExt;

/// A `MakeWriter` into a shared buffer.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'w> MakeWriter<'w> for Captured {
    type Writer = Captured;
    fn make_writer(&'w self) -> Captured {
        self.clone()
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().clone()).unwrap()
    }
}

fn rows() -> Vec<TransactionRow> {
    let mut hostile = crate::ledger::spool::tests::row(1_234_567);
    hostile.model_requested = "gpt \"4o\" \\ é 模型 \u{7f}".into();
    hostile.provider = Some("open\"ai\n\t\u{1}".into());
    hostile.upstream_model = None;
    hostile.http_status = None;
    hostile.estimated = true;
    let mut plain = crate::ledger::spool::tests::row(0);
    plain.status = "insufficient_balance".into();
    (plain.input_uncached_tokens, plain.output_tokens) = (i64::MAX, -1);
    vec![hostile, plain]
}

/// The lines each way writes for `rows` (an unrelated event between them).
fn lines(format: LogFormat, ours: bool) -> String {
    let out = Captured::default();
    let fmt = tracing_subscriber::fmt::layer().with_ansi(false).with_writer(out.clone());
    let fmt = match format {
        LogFormat::Text => fmt.boxed(),
        LogFormat::Json => fmt.json().flatten_event(true).with_span_list(false).boxed(),
    };
    let emit = || {
        for row in rows() {
            row.log_access();
            tracing::info!(provider = "other", "not an access line");
        }
    };
    if ours {
        let others = tracing_subscriber::filter::filter_fn(|m| !is_access(m));
        let subscriber = tracing_subscriber::registry()
            .with(fmt.with_filter(others))
            .with(AccessLineLayer::new(format, out.clone()));
        tracing::subscriber::with_default(subscriber, emit);
    } else {
        tracing::subscriber::with_default(tracing_subscriber::registry().with(fmt), emit);
    }
    out.text()
}

#[test]
fn text_lines_are_the_formatter_s() {
    let (theirs, ours) = (lines(LogFormat::Text, false), lines(LogFormat::Text, true));
    let untimed = |s: &str| s.lines().map(|l| l.split_once(' ').unwrap().1.to_string()).collect::<Vec<_>>();
    assert_eq!(untimed(&ours), untimed(&theirs), "\n{ours}\n{theirs}");
    assert_eq!(ours.lines().count(), 4);
    for (a, b) in ours.lines().zip(theirs.lines()) {
        assert_eq!(a.split_once(' ').unwrap().0.len(), b.split_once(' ').unwrap().0.len(), "timestamp");
    }
}

#[test]
fn json_lines_are_the_formatter_s() {
    let (theirs, ours) = (lines(LogFormat::Json, false), lines(LogFormat::Json, true));
    let parsed = |s: &str| {
        s.lines()
            .map(|l| {
                let mut v: serde_json::Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
                let stamp = v.as_object_mut().unwrap().remove("timestamp").unwrap();
                assert!(stamp.as_str().unwrap().ends_with('Z'), "{stamp}");
                v
            })
            .collect::<Vec<_>>()
    };
    let ours_parsed = parsed(&ours);
    assert_eq!(ours_parsed, parsed(&theirs), "\n{ours}\n{theirs}");
    assert_eq!(ours_parsed[0]["provider"], "open\"ai\n\t\u{1}");
    assert_eq!(ours_parsed[0]["model"], "gpt \"4o\" \\ é 模型 \u{7f}");
    assert_eq!(ours_parsed[2]["input_tokens"], i64::MAX);
}

#[test]
fn json_strings_escape_as_serde_json_does() {
    for s in ["", "plain", "\"", "\\", "a\u{0}b", "\u{1f}\u{7f}é模\r\n\t\u{8}\u{c}"] {
        let mut line = String::from("x");
        json_str(&mut line, s);
        assert_eq!(line, format!("x{}", serde_json::to_string(s).unwrap()));
    }
}
