//! Usage from a complete (non-streamed) chat completion body.

use super::{Dialect, check_format};
use crate::json::lenient::{Fields, NonNull, Obj, Str, skip, value};
use crate::{ApiFormat, PluginError, PluginResult, Usage};
use serde::de::MapAccess;

/// The parts of a chat completion body that billing reads; `choices` and the rest are
/// parsed (so a malformed body is still malformed) but not kept.
struct Response<'a, U> {
    model: Str<'a>,
    usage: Obj<U>,
    /// `error` is present and not null.
    error: bool,
    /// The top-level `type` (`"error"` marks an error body too).
    kind: Str<'a>,
}

impl<U> Default for Response<'_, U> {
    fn default() -> Self {
        Response { model: Str::default(), usage: Obj::default(), error: false, kind: Str::default() }
    }
}

impl<'de, U: Fields<'de>> Fields<'de> for Response<'de, U> {
    fn field<A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<(), A::Error> {
        match key {
            "model" => self.model = value(map)?,
            "usage" => self.usage = value(map)?,
            "error" => self.error = value::<NonNull, _>(map)?.0,
            "type" => self.kind = value(map)?,
            _ => skip(map)?,
        }
        Ok(())
    }
}

/// Usage of a chat completion response, read with dialect `D`.
///
/// - status >= 400, or an error body (`{"error": {...}}`) with any status: `Ok(None)`;
/// - a body without a `usage` object (or one with no token counts): `Ok(None)`;
/// - a 2xx body that is not a JSON object: `Err(Malformed)`; on other statuses a
///   body that cannot be read is no usage;
/// - otherwise the usage, with `served_model` from the top-level `model`.
pub fn extract_response<D: Dialect>(format: ApiFormat, status: u16, body: &[u8]) -> PluginResult<Option<Usage>> {
    check_format(format)?;
    if status >= 400 {
        return Ok(None);
    }
    let success = (200..300).contains(&status);
    let v: Response<D::UsageObject> = match crate::json::from_slice(body) {
        Ok(Obj(Some(v))) => v,
        Ok(Obj(None)) if success => {
            return Err(PluginError::Malformed("response body is not a JSON object".into()));
        }
        Ok(Obj(None)) => return Ok(None),
        Err(e) if success => return Err(PluginError::Malformed(format!("invalid JSON: {e}"))),
        Err(_) => return Ok(None),
    };
    // What `crate::json::is_error_body` checks.
    if v.error || v.kind.as_deref() == Some("error") {
        return Ok(None);
    }
    let Some(mut usage) = v.usage.0.as_ref().and_then(D::usage) else {
        return Ok(None);
    };
    usage.served_model = v.model.0.map(|m| m.into_owned());
    Ok(Some(usage))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::openai_chat::OpenAiDialect;

    fn extract(status: u16, body: &str) -> PluginResult<Option<Usage>> {
        extract_response::<OpenAiDialect>(ApiFormat::OpenaiChat, status, body.as_bytes())
    }

    #[test]
    fn reads_usage_and_model() {
        let u = extract(200, r#"{"model":"gpt-4o-2024-08-06","usage":{"prompt_tokens":9,"completion_tokens":3}}"#)
            .unwrap()
            .unwrap();
        assert_eq!((u.input_uncached_tokens, u.output_tokens), (9, 3));
        assert_eq!(u.served_model.as_deref(), Some("gpt-4o-2024-08-06"));
    }

    #[test]
    fn malformed_only_on_success() {
        assert!(matches!(extract(200, "{\"usage\":"), Err(PluginError::Malformed(_))));
        assert!(matches!(extract(201, "[1,2]"), Err(PluginError::Malformed(_))));
        assert!(matches!(extract(200, ""), Err(PluginError::Malformed(_))));
        assert_eq!(extract(502, "<html>Bad Gateway</html>"), Ok(None));
        assert_eq!(extract(304, ""), Ok(None));
        assert_eq!(extract(500, r#"{"usage":{"prompt_tokens":9,"completion_tokens":3}}"#), Ok(None));
    }

    #[test]
    fn error_and_usage_less_bodies_are_none() {
        assert_eq!(extract(200, r#"{"error":{"message":"x"},"usage":{"prompt_tokens":1}}"#), Ok(None));
        assert_eq!(extract(200, r#"{"model":"m","choices":[]}"#), Ok(None));
        assert_eq!(extract(200, r#"{"model":"m","usage":null}"#), Ok(None));
        // A null error is no error.
        assert!(extract(200, r#"{"error":null,"usage":{"prompt_tokens":1}}"#).unwrap().is_some());
    }

    #[test]
    fn other_formats_are_unsupported() {
        let r = extract_response::<OpenAiDialect>(ApiFormat::AnthropicMessages, 200, b"{}");
        assert_eq!(r, Err(PluginError::UnsupportedFormat(ApiFormat::AnthropicMessages)));
    }
}
