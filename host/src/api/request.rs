//! The parts of a client request the gateway reads or rewrites: model, stream flag, the
//! OpenAI usage opt-in. Every other top-level value passes through byte for byte.

use super::error::GatewayError;
use super::output_cap::CapRule;
use crate::plugins::ApiFormat;
use indexmap::IndexMap;
use serde_json::value::RawValue;

/// A parsed JSON request body: top-level keys in order, values untouched.
#[derive(Debug)]
pub struct ClientRequest {
    fields: IndexMap<String, Box<RawValue>>,
    /// Whether the top-level object changed (model rewrite, usage opt-in).
    changed: bool,
}

impl ClientRequest {
    /// Parses a body; it must be a JSON object.
    pub fn parse(body: &[u8]) -> Result<Self, GatewayError> {
        let fields: IndexMap<String, Box<RawValue>> = serde_json::from_slice(body).map_err(|e| {
            if serde_json::from_slice::<serde_json::Value>(body).is_ok() {
                GatewayError::InvalidRequest("request body must be a JSON object".into())
            } else {
                GatewayError::MalformedJson(e.to_string())
            }
        })?;
        Ok(ClientRequest { fields, changed: false })
    }

    /// The top-level `model` string, if any.
    pub fn model(&self) -> Option<String> {
        self.fields.get("model").and_then(|raw| serde_json::from_str::<String>(raw.get()).ok())
    }

    /// Whether `"stream": true`.
    pub fn stream(&self) -> bool {
        self.fields.get("stream").is_some_and(|raw| raw.get().trim() == "true")
    }

    /// Sets the top-level `model`.
    pub fn set_model(&mut self, model: &str) {
        let raw = RawValue::from_string(serde_json::to_string(model).unwrap_or_default()).expect("a JSON string");
        self.fields.insert("model".into(), raw);
        self.changed = true;
    }

    /// For OpenAI streams: asks for the final usage chunk. Returns whether the client had
    /// already asked (then it sees the chunk; otherwise the gateway hides it).
    pub fn ensure_include_usage(&mut self) -> bool {
        let existing = self
            .fields
            .get("stream_options")
            .and_then(|raw| serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(raw.get()).ok());
        let mut options = existing.unwrap_or_default();
        if options.get("include_usage").and_then(serde_json::Value::as_bool) == Some(true) {
            return true;
        }
        options.insert("include_usage".into(), serde_json::Value::Bool(true));
        let raw = RawValue::from_string(serde_json::Value::Object(options).to_string()).expect("valid JSON");
        self.fields.insert("stream_options".into(), raw);
        self.changed = true;
        false
    }

    /// Caps the output limit (see [`output_cap`](super::output_cap)); returns the cap. The
    /// body always changes, so duplicate top-level keys never reach the provider.
    pub fn cap_output(&mut self, rule: &CapRule<'_>) -> Result<u64, GatewayError> {
        let keys: &[&str] = match rule.format {
            ApiFormat::OpenaiChat => &["max_completion_tokens", "max_tokens"],
            ApiFormat::AnthropicMessages => &["max_tokens"],
            ApiFormat::GeminiGenerate => &["generationConfig", "generation_config"],
        };
        let mut view = serde_json::Map::new();
        for key in keys {
            if let Some(raw) = self.fields.get(*key) {
                let value = serde_json::from_str(raw.get()).map_err(|e| GatewayError::MalformedJson(e.to_string()))?;
                view.insert((*key).to_string(), value);
            }
        }
        let cap = super::output_cap::cap(&mut view, rule)?;
        for (key, value) in view {
            self.fields.insert(key, RawValue::from_string(value.to_string()).expect("valid JSON"));
        }
        self.changed = true;
        Ok(cap)
    }

    /// The body to send upstream: the original bytes when nothing changed.
    pub fn into_body(self, original: bytes::Bytes) -> bytes::Bytes {
        if !self.changed {
            return original;
        }
        serde_json::to_vec(&self.fields).map(bytes::Bytes::from).unwrap_or(original)
    }
}

/// What the request path needs to know about one client request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestFacts {
    pub format: ApiFormat,
    pub model: String,
    pub stream: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrites_only_what_it_must() {
        let body = br#"{"model":"gpt","messages":[{"role":"user","content":"hi  there"}],"temperature":0.10000000000000001,"stream":true}"#;
        let mut r = ClientRequest::parse(body).unwrap();
        assert_eq!(r.model().as_deref(), Some("gpt"));
        assert!(r.stream());
        assert!(!r.ensure_include_usage());
        r.set_model("gpt-4o-2024-08-06");
        let out = r.into_body(bytes::Bytes::from_static(body));
        let text = std::str::from_utf8(&out).unwrap();
        assert!(text.contains(r#""temperature":0.10000000000000001"#), "{text}");
        assert!(text.contains(r#""content":"hi  there""#));
        assert!(text.starts_with(r#"{"model":"gpt-4o-2024-08-06""#));
        assert!(text.ends_with(r#""stream_options":{"include_usage":true}}"#), "{text}");
    }

    #[test]
    fn unchanged_body_is_the_same_bytes() {
        let body = bytes::Bytes::from_static(b"{ \"model\" : \"m\" }");
        let r = ClientRequest::parse(&body).unwrap();
        assert_eq!(r.into_body(body.clone()), body);
    }

    #[test]
    fn bad_bodies() {
        assert!(matches!(ClientRequest::parse(b"{oops"), Err(GatewayError::MalformedJson(_))));
        assert!(matches!(ClientRequest::parse(b"[1]"), Err(GatewayError::InvalidRequest(_))));
        let mut r = ClientRequest::parse(br#"{"stream_options":{"include_usage":true}}"#).unwrap();
        assert!(r.ensure_include_usage());
    }
}
