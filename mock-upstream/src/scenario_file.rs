//! The scenario file of the binary: models mapped to recorded files, paths relative to it.
//!
//! ```json
//! {"scenarios": [
//!   {"model": "gpt-4o-mini", "response": "openai/chat_basic.json",
//!    "stream": "openai/stream_usage.sse", "chunk_interval_ms": 20},
//!   {"model": "gemini-2.5-flash", "response": "gemini/generate_basic.json",
//!    "stream": ["gemini/stream_thinking.sse", "gemini/stream_thinking.json"]},
//!   {"model": "*", "fixture": "openai/error_429.case.json"}
//! ]}
//! ```
//!
//! Keys of an entry: `model` (required), `fixture` (a `<name>.case.json`, as
//! [`Scenario::from_fixture`]), `response` (non-stream body file), `stream` (one file or a list;
//! each is sniffed as SSE or JSON array), `status`, `headers` (an object), `first_byte_delay_ms`,
//! `chunk_interval_ms`, `cut_after_chunks`, `stall_after_chunks`.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::time::Duration;

use hyper::StatusCode;
use hyper::header::{HeaderName, HeaderValue};
use serde::Deserialize;

use crate::error::ScenarioError;
use crate::scenario::Scenario;
use crate::stream::{RecordedStream, StreamFormat};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ScenarioFile {
    scenarios: Vec<Entry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    model: String,
    #[serde(default)]
    fixture: Option<String>,
    #[serde(default)]
    response: Option<String>,
    #[serde(default)]
    stream: Option<OneOrMany>,
    #[serde(default)]
    status: Option<u16>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default)]
    first_byte_delay_ms: u64,
    #[serde(default)]
    chunk_interval_ms: u64,
    #[serde(default)]
    cut_after_chunks: Option<usize>,
    #[serde(default)]
    stall_after_chunks: Option<usize>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn into_vec(self) -> Vec<String> {
        match self {
            Self::One(one) => vec![one],
            Self::Many(many) => many,
        }
    }
}

/// Loads a scenario file; relative paths in it are resolved against its directory.
pub fn load_scenario_file(path: impl AsRef<Path>) -> Result<Vec<(String, Scenario)>, ScenarioError> {
    let path = path.as_ref();
    let text = std::fs::read(path).map_err(|source| ScenarioError::Read { path: path.to_owned(), source })?;
    let file: ScenarioFile =
        serde_json::from_slice(&text).map_err(|source| ScenarioError::File { path: path.to_owned(), source })?;
    let base = path.parent().unwrap_or(Path::new(""));
    let mut seen = HashSet::new();
    let mut scenarios = Vec::with_capacity(file.scenarios.len());
    for (index, entry) in file.scenarios.into_iter().enumerate() {
        let model = entry.model.clone();
        let invalid = |reason: String| ScenarioError::Invalid { index, model: model.clone(), reason };
        if model.is_empty() {
            return Err(invalid("empty model".to_owned()));
        }
        if !seen.insert(model.clone()) {
            return Err(invalid("model listed twice".to_owned()));
        }
        let scenario = entry_scenario(entry, base, &invalid)?;
        scenarios.push((model, scenario));
    }
    Ok(scenarios)
}

fn entry_scenario(
    entry: Entry,
    base: &Path,
    invalid: &dyn Fn(String) -> ScenarioError,
) -> Result<Scenario, ScenarioError> {
    let mut scenario = match &entry.fixture {
        Some(fixture) => Scenario::from_fixture(base.join(fixture))?,
        None => Scenario::default(),
    };
    if let Some(status) = entry.status {
        StatusCode::from_u16(status).map_err(|_| invalid(format!("invalid status {status}")))?;
        scenario.status = status;
    }
    if let Some(response) = &entry.response {
        scenario = scenario.with_body_file(base.join(response))?;
    }
    let mut formats = HashSet::new();
    for file in entry.stream.map(OneOrMany::into_vec).unwrap_or_default() {
        let path = base.join(&file);
        let bytes = std::fs::read(&path).map_err(|source| ScenarioError::Read { path, source })?;
        let stream = RecordedStream::new(bytes);
        if !formats.insert(stream.format()) {
            let kind = if stream.format() == StreamFormat::Sse { "SSE" } else { "JSON-array" };
            return Err(invalid(format!("more than one {kind} stream ({file})")));
        }
        scenario = scenario.with_recorded_stream(stream);
    }
    for (name, value) in entry.headers {
        HeaderName::from_bytes(name.as_bytes()).map_err(|_| invalid(format!("invalid header name {name:?}")))?;
        HeaderValue::from_str(&value).map_err(|_| invalid(format!("invalid value of header {name}")))?;
        scenario = scenario.with_header(name, value);
    }
    scenario.first_byte_delay = Duration::from_millis(entry.first_byte_delay_ms);
    scenario.chunk_interval = Duration::from_millis(entry.chunk_interval_ms);
    scenario.cut_after_chunks = entry.cut_after_chunks;
    scenario.stall_after_chunks = entry.stall_after_chunks;
    Ok(scenario)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
        let path = dir.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn loads_entries_with_relative_paths() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "p/basic.json", "{\"ok\":true}");
        write(dir.path(), "p/s.sse", "data: 1\n\ndata: 2\n\n");
        write(dir.path(), "p/s.json", "[{\"a\":1}\r\n,\r\n{\"b\":2}\r\n]");
        write(dir.path(), "p/e.json", "{\"error\":{}}");
        write(dir.path(), "p/e.case.json", r#"{"stream":false,"status":429,"body":"e.json"}"#);
        let file = write(
            dir.path(),
            "mock.json",
            r#"{"scenarios":[
                {"model":"a","response":"p/basic.json","stream":"p/s.sse","chunk_interval_ms":20,
                 "first_byte_delay_ms":5,"cut_after_chunks":1,"headers":{"x-request-id":"r1"}},
                {"model":"g","stream":["p/s.sse","p/s.json"],"stall_after_chunks":1},
                {"model":"*","fixture":"p/e.case.json"}
            ]}"#,
        );
        let loaded = load_scenario_file(&file).unwrap();
        assert_eq!(loaded.iter().map(|(m, _)| m.as_str()).collect::<Vec<_>>(), ["a", "g", "*"]);
        let a = &loaded[0].1;
        assert_eq!(a.body.as_deref(), Some(&b"{\"ok\":true}"[..]));
        assert_eq!(a.sse_stream.as_ref().unwrap().chunks().len(), 2);
        assert_eq!((a.chunk_interval, a.first_byte_delay), (Duration::from_millis(20), Duration::from_millis(5)));
        assert_eq!((a.cut_after_chunks, a.headers.clone()), (Some(1), vec![("x-request-id".into(), "r1".into())]));
        let g = &loaded[1].1;
        assert_eq!(g.array_stream.as_ref().unwrap().chunks().len(), 2);
        assert!(g.sse_stream.is_some());
        assert_eq!(g.stall_after_chunks, Some(1));
        assert_eq!(loaded[2].1.status, 429);
    }

    #[test]
    fn rejects_bad_entries() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "s.sse", "data: 1\n\n");
        let cases = [
            (r#"{"scenarios":[{"model":"a","bogus":1}]}"#, "File"),
            (r#"{"scenarios":[{"model":"a"},{"model":"a"}]}"#, "Invalid"),
            (r#"{"scenarios":[{"model":"a","status":1000}]}"#, "Invalid"),
            (r#"{"scenarios":[{"model":"a","headers":{"bad name":"x"}}]}"#, "Invalid"),
            (r#"{"scenarios":[{"model":"a","stream":["s.sse","s.sse"]}]}"#, "Invalid"),
            (r#"{"scenarios":[{"model":"a","response":"missing.json"}]}"#, "Read"),
        ];
        for (text, want) in cases {
            let file = write(dir.path(), "mock.json", text);
            let got = match load_scenario_file(&file) {
                Err(ScenarioError::File { .. }) => "File",
                Err(ScenarioError::Invalid { .. }) => "Invalid",
                Err(ScenarioError::Read { .. }) => "Read",
                other => panic!("{text}: {other:?}"),
            };
            assert_eq!(got, want, "{text}");
        }
    }
}
