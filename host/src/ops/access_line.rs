//! Writes the access line (one per settled request, target [`ACCESS_TARGET`]) in the log's
//! format, the lines `tracing-subscriber`'s formatter would write for it, without its
//! generic machinery: no JSON object built per line (its JSON formatter fills a `BTreeMap`
//! of `serde_json::Value`s), fields written as they are visited into a buffer kept per
//! thread. The access line was 6 % of the gateway's CPU at saturation, two thirds of it the
//! formatter (README, Benchmarks). Every other event still goes to the formatter.
//!
//! Fields keep the formatter's rules: in text, a `%` (Display) field is written as it is and
//! a string field quoted and escaped (`{:?}`); in JSON every string is escaped. Nothing a
//! client sends reaches the line unvalidated (request ids are bounded at the edge).

use crate::config::LogFormat;
use crate::ledger::row::ACCESS_TARGET;
use std::cell::RefCell;
use std::fmt::{Debug, Write as _};
use std::io::Write as _;
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::layer::Context;

/// The access-line layer over `writer` (give it the log filter; it ignores other targets).
#[derive(Debug)]
pub struct AccessLineLayer<W> {
    format: LogFormat,
    writer: W,
}

impl<W> AccessLineLayer<W> {
    pub fn new(format: LogFormat, writer: W) -> Self {
        AccessLineLayer { format, writer }
    }
}

/// Whether an event is an access line (the other layers' filters leave them out).
pub fn is_access(metadata: &tracing::Metadata<'_>) -> bool {
    metadata.target() == ACCESS_TARGET
}

thread_local! {
    static LINE: RefCell<String> = const { RefCell::new(String::new()) };
}

impl<S, W> Layer<S> for AccessLineLayer<W>
where
    S: Subscriber,
    W: for<'w> MakeWriter<'w> + 'static,
{
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        if !is_access(event.metadata()) {
            return;
        }
        LINE.with_borrow_mut(|line| {
            line.clear();
            format_line(self.format, event, line);
            let _ = self.writer.make_writer_for(event.metadata()).write_all(line.as_bytes());
        });
    }
}

/// One access event as its log line (with the newline).
fn format_line(format: LogFormat, event: &Event<'_>, line: &mut String) {
    if format == LogFormat::Json {
        line.push_str("{\"timestamp\":\"");
        let _ = SystemTime.format_time(&mut Writer::new(line));
        line.push_str("\",\"level\":\"INFO\"");
    } else {
        let _ = SystemTime.format_time(&mut Writer::new(line));
        line.push_str("  INFO ");
        line.push_str(ACCESS_TARGET);
        line.push_str(": ");
    }
    event.record(&mut Fields { line, json: format == LogFormat::Json, first: true });
    if format == LogFormat::Json {
        line.push_str(",\"target\":");
        json_str(line, ACCESS_TARGET);
        line.push('}');
    }
    line.push('\n');
}

/// The fields, as they are visited: in text the message bare, then ` name=value`; in JSON
/// `,"name":value`.
struct Fields<'a> {
    line: &'a mut String,
    json: bool,
    first: bool,
}

impl Fields<'_> {
    /// Writes the field's name; whether it is the text message (written bare).
    fn name(&mut self, field: &Field) -> bool {
        if self.json {
            self.line.push(',');
            json_str(self.line, field.name());
            self.line.push(':');
            return false;
        }
        if !std::mem::take(&mut self.first) {
            self.line.push(' ');
        }
        let message = field.name() == "message";
        if !message {
            self.line.push_str(field.name());
            self.line.push('=');
        }
        message
    }

    fn plain(&mut self, field: &Field, value: &str) {
        self.name(field);
        self.line.push_str(value);
    }
}

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        match (self.name(field), self.json) {
            (true, _) => self.line.push_str(value),
            (false, true) => json_str(self.line, value),
            (false, false) => drop(write!(self.line, "{value:?}")),
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.plain(field, itoa::Buffer::new().format(value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.plain(field, itoa::Buffer::new().format(value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.plain(field, if value { "true" } else { "false" });
    }

    fn record_debug(&mut self, field: &Field, value: &dyn Debug) {
        self.name(field);
        let start = self.line.len();
        let _ = write!(self.line, "{value:?}");
        if !self.json {
            return;
        }
        // Formatted once into the line, then quoted, or escaped when it needs it.
        if self.line[start..].bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
            self.line.insert(start, '"');
            self.line.push('"');
        } else {
            let raw = self.line.split_off(start);
            json_str(self.line, &raw);
        }
    }
}

/// Appends `s` as a JSON string, escaped as `serde_json` (the formatter's JSON) escapes it.
fn json_str(line: &mut String, s: &str) {
    line.push('"');
    let mut plain = 0;
    for (i, b) in s.bytes().enumerate() {
        let escape = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            0..0x20 => "",
            _ => continue,
        };
        line.push_str(&s[plain..i]);
        plain = i + 1;
        match escape {
            "" => drop(write!(line, "\\u{b:04x}")),
            e => line.push_str(e),
        }
    }
    line.push_str(&s[plain..]);
    line.push('"');
}

#[cfg(test)]
#[path = "access_line_tests.rs"]
mod tests;
