//! Recording of every request the mock receives, for assertions on what reached the provider.

use bytes::Bytes;
use parking_lot::Mutex;

/// One request as the mock received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    /// The method (`POST`, `GET`, ...).
    pub method: String,
    /// The path, without the query string.
    pub path: String,
    /// The raw query string, without `?`, when there is one.
    pub query: Option<String>,
    /// Every header, in order, names lowercase; values not valid UTF-8 are converted lossily.
    pub headers: Vec<(String, String)>,
    /// The request body.
    pub body: Bytes,
}

impl RecordedRequest {
    /// Records the head of a hyper request and its collected body.
    pub(crate) fn new(parts: &hyper::http::request::Parts, body: Bytes) -> Self {
        Self {
            method: parts.method.as_str().to_owned(),
            path: parts.uri.path().to_owned(),
            query: parts.uri.query().map(str::to_owned),
            headers: parts
                .headers
                .iter()
                .map(|(name, value)| (name.as_str().to_owned(), String::from_utf8_lossy(value.as_bytes()).into_owned()))
                .collect(),
            body,
        }
    }

    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// Every value of header `name` (case-insensitive).
    pub fn header_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers.iter().filter(move |(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The raw (not percent-decoded) value of query parameter `name`; an empty string for a
    /// bare `name`.
    pub fn query_param(&self, name: &str) -> Option<&str> {
        query_param(self.query.as_deref()?, name)
    }

    /// The body parsed as JSON, when it is JSON.
    pub fn body_json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok()
    }
}

/// The raw value of query parameter `name` in `query`.
pub(crate) fn query_param<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query.split('&').find_map(|pair| match pair.split_once('=') {
        Some((key, value)) => (key == name).then_some(value),
        None => (pair == name).then_some(""),
    })
}

/// The list of recorded requests, in arrival order.
#[derive(Debug, Default)]
pub(crate) struct Recorder {
    requests: Mutex<Vec<RecordedRequest>>,
}

impl Recorder {
    /// Appends a request.
    pub(crate) fn push(&self, request: RecordedRequest) {
        self.requests.lock().push(request);
    }

    /// A copy of every request so far.
    pub(crate) fn all(&self) -> Vec<RecordedRequest> {
        self.requests.lock().clone()
    }

    /// Every request so far, emptying the list.
    pub(crate) fn take(&self) -> Vec<RecordedRequest> {
        std::mem::take(&mut *self.requests.lock())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_params_and_headers() {
        let r = RecordedRequest {
            method: "POST".into(),
            path: "/x".into(),
            query: Some("alt=sse&key=abc&flag".into()),
            headers: vec![
                ("x-goog-api-key".into(), "k1".into()),
                ("Accept".into(), "a".into()),
                ("accept".into(), "b".into()),
            ],
            body: Bytes::from_static(b"{\"model\":\"m\"}"),
        };
        assert_eq!(r.query_param("key"), Some("abc"));
        assert_eq!(r.query_param("flag"), Some(""));
        assert_eq!(r.query_param("ke"), None);
        assert_eq!(r.header("X-Goog-Api-Key"), Some("k1"));
        assert_eq!(r.header_all("accept").collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(r.body_json().unwrap()["model"], "m");
    }
}
