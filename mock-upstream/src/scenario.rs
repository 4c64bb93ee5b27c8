//! Scenarios: what the mock answers for one model, and the runtime table of them.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use parking_lot::RwLock;
use serde::Deserialize;

use crate::error::ScenarioError;
use crate::stream::{RecordedStream, StreamFormat};

/// The model id of the fallback scenario, used when no scenario names the requested model.
pub const WILDCARD_MODEL: &str = "*";
/// The scenario key for OpenAI's `GET /v1/models` (a generated list is served when absent).
pub const OPENAI_MODELS_KEY: &str = "GET /v1/models";
/// The scenario key for OpenRouter's `GET /api/v1/models` price list (a generated list is
/// served when absent).
pub const OPENROUTER_MODELS_KEY: &str = "GET /api/v1/models";

/// What the mock answers for one model.
///
/// A request that asks for a stream gets a recorded stream when the scenario has one (Gemini
/// `alt=sse` prefers the SSE stream, Gemini without it the JSON-array stream), otherwise the
/// body; a request that does not ask for a stream gets the body when there is one, otherwise
/// a stream. A scenario with neither answers an empty body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scenario {
    /// HTTP status of the response (default 200).
    pub status: u16,
    /// Extra response headers; a `content-type` here replaces the default one.
    pub headers: Vec<(String, String)>,
    /// The non-stream body.
    pub body: Option<Bytes>,
    /// The `content-type` of [`Scenario::body`] (default `application/json`).
    pub body_content_type: String,
    /// The SSE stream.
    pub sse_stream: Option<RecordedStream>,
    /// The JSON-array stream (Gemini / Vertex without `alt=sse`).
    pub array_stream: Option<RecordedStream>,
    /// Delay before the response head is sent.
    pub first_byte_delay: Duration,
    /// Delay between two stream chunks.
    pub chunk_interval: Duration,
    /// After this many stream chunks (and one more [`Scenario::chunk_interval`]), abort the
    /// connection mid-body: the client sees an incomplete body. A number at or above the chunk
    /// count sends every chunk, then aborts. On HTTP/2 the whole connection is aborted.
    pub cut_after_chunks: Option<usize>,
    /// After this many stream chunks, send nothing more but keep the connection open until the
    /// mock shuts down.
    pub stall_after_chunks: Option<usize>,
}

impl Default for Scenario {
    fn default() -> Self {
        Self {
            status: 200,
            headers: Vec::new(),
            body: None,
            body_content_type: "application/json".to_owned(),
            sse_stream: None,
            array_stream: None,
            first_byte_delay: Duration::ZERO,
            chunk_interval: Duration::ZERO,
            cut_after_chunks: None,
            stall_after_chunks: None,
        }
    }
}

/// The part of a `<name>.case.json` fixture description the mock needs.
#[derive(Deserialize)]
struct CaseFile {
    #[serde(default)]
    stream: bool,
    #[serde(default = "default_status")]
    status: u16,
    body: String,
}

fn default_status() -> u16 {
    200
}

fn read(path: &Path) -> Result<Bytes, ScenarioError> {
    std::fs::read(path).map(Bytes::from).map_err(|source| ScenarioError::Read { path: path.to_owned(), source })
}

/// The `content-type` a body file is served with, by extension.
fn content_type_for(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()) {
        Some("html" | "htm") => "text/html; charset=utf-8",
        Some("txt") => "text/plain; charset=utf-8",
        _ => "application/json",
    }
}

impl Scenario {
    /// A non-stream JSON response.
    pub fn json(status: u16, body: impl Into<Bytes>) -> Self {
        Self { status, body: Some(body.into()), ..Self::default() }
    }

    /// A 200 stream response; the framing is sniffed (see [`StreamFormat::sniff`]).
    pub fn stream(bytes: impl Into<Bytes>) -> Self {
        Self::default().with_stream(bytes)
    }

    /// A scenario from a fixture file: a `<name>.case.json` description (its `status`, and its
    /// `body` file as the stream when `"stream": true`, as the body otherwise), a `.sse` file
    /// (a 200 stream), or any other file (a 200 body).
    pub fn from_fixture(path: impl AsRef<Path>) -> Result<Self, ScenarioError> {
        let path = path.as_ref();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        if name.ends_with(".case.json") {
            let case: CaseFile = serde_json::from_slice(&read(path)?)
                .map_err(|source| ScenarioError::Case { path: path.to_owned(), source })?;
            let body = path.parent().unwrap_or(Path::new("")).join(&case.body);
            let scenario = Self::default().with_status(case.status);
            return if case.stream { scenario.with_stream_file(body) } else { scenario.with_body_file(body) };
        }
        if name.ends_with(".sse") {
            Self::default().with_stream_file(path)
        } else {
            Self::default().with_body_file(path)
        }
    }

    /// Sets the status.
    pub fn with_status(mut self, status: u16) -> Self {
        self.status = status;
        self
    }

    /// Adds a response header.
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sets the non-stream body (served as `application/json` unless a header says otherwise).
    pub fn with_body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = Some(body.into());
        self
    }

    /// Sets the non-stream body from a file; `.html` and `.txt` files get a matching
    /// `content-type`.
    pub fn with_body_file(mut self, path: impl AsRef<Path>) -> Result<Self, ScenarioError> {
        let path = path.as_ref();
        self.body = Some(read(path)?);
        self.body_content_type = content_type_for(path).to_owned();
        Ok(self)
    }

    /// Sets a stream; its framing is sniffed and decides whether it becomes the SSE or the
    /// JSON-array stream.
    pub fn with_stream(self, bytes: impl Into<Bytes>) -> Self {
        self.with_recorded_stream(RecordedStream::new(bytes))
    }

    /// Sets a stream already split (see [`RecordedStream`]), in the slot of its framing.
    pub fn with_recorded_stream(mut self, stream: RecordedStream) -> Self {
        match stream.format() {
            StreamFormat::Sse => self.sse_stream = Some(stream),
            StreamFormat::JsonArray => self.array_stream = Some(stream),
        }
        self
    }

    /// Sets a stream from a file (framing sniffed, as [`Scenario::with_stream`]).
    pub fn with_stream_file(self, path: impl AsRef<Path>) -> Result<Self, ScenarioError> {
        Ok(self.with_stream(read(path.as_ref())?))
    }

    /// Sets the delay before the response head.
    pub fn with_first_byte_delay(mut self, delay: Duration) -> Self {
        self.first_byte_delay = delay;
        self
    }

    /// Sets the delay between stream chunks.
    pub fn with_chunk_interval(mut self, interval: Duration) -> Self {
        self.chunk_interval = interval;
        self
    }

    /// Aborts the connection after `chunks` stream chunks.
    pub fn cut_after(mut self, chunks: usize) -> Self {
        self.cut_after_chunks = Some(chunks);
        self
    }

    /// Stops sending, keeping the connection open, after `chunks` stream chunks.
    pub fn stall_after(mut self, chunks: usize) -> Self {
        self.stall_after_chunks = Some(chunks);
        self
    }

    /// The stream to replay for a request wanting `format`: that framing if recorded, else
    /// the other one.
    pub fn stream_for(&self, format: StreamFormat) -> Option<&RecordedStream> {
        let (preferred, other) = match format {
            StreamFormat::Sse => (&self.sse_stream, &self.array_stream),
            StreamFormat::JsonArray => (&self.array_stream, &self.sse_stream),
        };
        preferred.as_ref().or(other.as_ref())
    }
}

/// The runtime table of scenarios, keyed by model id (or a models-list key).
#[derive(Debug, Default)]
pub(crate) struct ScenarioTable {
    by_model: RwLock<HashMap<String, Arc<Scenario>>>,
}

impl ScenarioTable {
    /// Adds or replaces the scenario for `model`.
    pub(crate) fn set(&self, model: String, scenario: Scenario) {
        self.by_model.write().insert(model, Arc::new(scenario));
    }

    /// Removes the scenario for `model`, returning it.
    pub(crate) fn remove(&self, model: &str) -> Option<Arc<Scenario>> {
        self.by_model.write().remove(model)
    }

    /// The scenario for `key` exactly.
    pub(crate) fn get(&self, key: &str) -> Option<Arc<Scenario>> {
        self.by_model.read().get(key).cloned()
    }

    /// The scenario for `model`, falling back to the [`WILDCARD_MODEL`] one.
    pub(crate) fn lookup(&self, model: &str) -> Option<Arc<Scenario>> {
        let table = self.by_model.read();
        table.get(model).or_else(|| table.get(WILDCARD_MODEL)).cloned()
    }

    /// The registered model ids, sorted, without the wildcard and models-list keys.
    pub(crate) fn models(&self) -> Vec<String> {
        let mut models: Vec<String> = self
            .by_model
            .read()
            .keys()
            .filter(|k| !matches!(k.as_str(), WILDCARD_MODEL | OPENAI_MODELS_KEY | OPENROUTER_MODELS_KEY))
            .cloned()
            .collect();
        models.sort();
        models
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_falls_back_to_wildcard() {
        let table = ScenarioTable::default();
        assert!(table.lookup("m").is_none());
        table.set("*".into(), Scenario::json(201, "{}"));
        table.set("m".into(), Scenario::json(200, "{}"));
        assert_eq!(table.lookup("m").unwrap().status, 200);
        assert_eq!(table.lookup("other").unwrap().status, 201);
        assert!(table.remove("*").is_some());
        assert!(table.lookup("other").is_none());
    }

    #[test]
    fn streams_go_to_the_slot_of_their_framing() {
        let s = Scenario::stream("data: a\n\n").with_stream("[{}]");
        assert_eq!(s.stream_for(StreamFormat::Sse).unwrap().format(), StreamFormat::Sse);
        assert_eq!(s.stream_for(StreamFormat::JsonArray).unwrap().format(), StreamFormat::JsonArray);
        let only_sse = Scenario::stream("data: a\n\n");
        assert_eq!(only_sse.stream_for(StreamFormat::JsonArray).unwrap().format(), StreamFormat::Sse);
    }

    #[test]
    fn from_fixture_reads_case_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("e.json"), "{\"error\":1}").unwrap();
        std::fs::write(dir.path().join("e.case.json"), r#"{"api":"x","stream":false,"status":429,"body":"e.json"}"#)
            .unwrap();
        std::fs::write(dir.path().join("s.sse"), "data: 1\n\n").unwrap();
        std::fs::write(dir.path().join("s.case.json"), r#"{"stream":true,"status":200,"body":"s.sse"}"#).unwrap();
        let e = Scenario::from_fixture(dir.path().join("e.case.json")).unwrap();
        assert_eq!((e.status, e.body.as_deref()), (429, Some(&b"{\"error\":1}"[..])));
        assert!(e.sse_stream.is_none());
        let s = Scenario::from_fixture(dir.path().join("s.case.json")).unwrap();
        assert!(s.body.is_none());
        assert_eq!(s.sse_stream.unwrap().bytes().as_ref(), b"data: 1\n\n");
        let html = dir.path().join("x.html");
        std::fs::write(&html, "<html/>").unwrap();
        assert_eq!(Scenario::from_fixture(html).unwrap().body_content_type, "text/html; charset=utf-8");
        assert!(matches!(Scenario::from_fixture(dir.path().join("missing.json")), Err(ScenarioError::Read { .. })));
    }
}
