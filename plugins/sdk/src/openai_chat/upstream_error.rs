//! Errors an upstream reports inside a body or a stream (`{"error": {...}}`).

use crate::StreamError;
use crate::json::{Value, number_text, value_text};

/// Longest error message kept, in bytes; upstream messages can embed whole raw bodies.
pub const MAX_MESSAGE_BYTES: usize = 2048;

/// The error carried by a chunk: its top-level `error`, or else the `error` of one of
/// its `choices` (OpenRouter puts it on the choice in some shapes). `None` when the
/// chunk carries no non-null error.
pub fn chunk_error(chunk: &Value) -> Option<StreamError> {
    let top = chunk.get("error").filter(|e| !e.is_null());
    let on_choice = || chunk.get("choices")?.as_array()?.iter().find_map(|c| c.get("error").filter(|e| !e.is_null()));
    top.or_else(on_choice).map(stream_error)
}

/// A [`StreamError`] from an `error` value: an object with `message` and `code` (a
/// string or a number; `type` when `code` is absent), or a bare string.
pub fn stream_error(error: &Value) -> StreamError {
    let message = match error {
        Value::String(s) => s.clone(),
        Value::Object(map) => match map.get("message") {
            Some(Value::String(s)) => s.clone(),
            _ => value_text(error),
        },
        other => value_text(other),
    };
    let code = error.get("code").and_then(code_text).or_else(|| error.get("type").and_then(code_text));
    StreamError { code, message: truncate(message) }
}

/// A string or number code as text; anything else is no code.
fn code_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(number_text(n)),
        _ => None,
    }
}

/// Cuts `s` to at most [`MAX_MESSAGE_BYTES`], on a character boundary.
fn truncate(mut s: String) -> String {
    if s.len() > MAX_MESSAGE_BYTES {
        let mut end = MAX_MESSAGE_BYTES;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_openai_and_openrouter_shapes() {
        let e = chunk_error(&json!({"error": {"message": "boom", "type": "server_error", "code": null}})).unwrap();
        assert_eq!((e.code.as_deref(), e.message.as_str()), (Some("server_error"), "boom"));
        let e = chunk_error(&json!({"error": {"code": 502, "message": "down"}, "choices": []})).unwrap();
        assert_eq!((e.code.as_deref(), e.message.as_str()), (Some("502"), "down"));
        let e = chunk_error(&json!({"choices": [{"index": 0, "error": {"code": 429, "message": "slow"}}]})).unwrap();
        assert_eq!(e.message, "slow");
        let e = chunk_error(&json!({"error": "plain"})).unwrap();
        assert_eq!((e.code, e.message.as_str()), (None, "plain"));
        let e = chunk_error(&json!({"error": {"detail": 1}})).unwrap();
        assert_eq!(e.message, r#"{"detail":1}"#);
        assert!(chunk_error(&json!({"error": null, "choices": [{"error": null}]})).is_none());
        assert!(chunk_error(&json!({"choices": "x"})).is_none());
    }

    #[test]
    fn numbers_in_codes_and_messages_read_as_serde_json_prints_them() {
        let e = stream_error(&json!({"code": 1.5, "detail": [1e21, -0.0, 2.5e-7, 3]}));
        assert_eq!(
            (e.code.as_deref(), e.message.as_str()),
            (Some("1.5"), r#"{"code":1.5,"detail":[1e+21,-0.0,2.5e-7,3]}"#)
        );
        let e = stream_error(&json!(1e-7));
        assert_eq!((e.code, e.message.as_str()), (None, "1e-7"));
        for error in [json!({"code": 1e300, "x": {"y": [0.1, "é\n"]}}), json!([0.30000000000000004]), json!(false)] {
            let e = stream_error(&error);
            assert_eq!(e.message, error.to_string());
            assert_eq!(e.code, error.get("code").map(Value::to_string));
        }
    }

    #[test]
    fn long_messages_are_cut_on_a_char_boundary() {
        let e = stream_error(&json!("é".repeat(MAX_MESSAGE_BYTES)));
        assert_eq!(e.message.len(), MAX_MESSAGE_BYTES);
        let e = stream_error(&json!(format!("x{}", "é".repeat(MAX_MESSAGE_BYTES))));
        assert_eq!(e.message.len(), MAX_MESSAGE_BYTES - 1);
    }
}
