//! What one Gemini response object (a whole response or a stream chunk) says beyond usage.

use xjp_plugin_sdk::StreamError;
use xjp_plugin_sdk::json::{Value, is_error_body, str_at};

/// The error an error object (`{"error": {"code", "message", "status"}}`) describes.
pub fn error_of(response: &Value) -> Option<StreamError> {
    if !is_error_body(response) {
        return None;
    }
    let error = response.get("error").unwrap_or(&Value::Null);
    let code = match (str_at(error, &["status"]), error.get("code")) {
        (Some(status), _) => Some(status.to_owned()),
        (None, Some(Value::Number(n))) => Some(n.to_string()),
        _ => None,
    };
    let message = str_at(error, &["message"]).or_else(|| error.as_str()).unwrap_or("upstream reported an error");
    Some(StreamError { code, message: message.to_owned() })
}

/// The candidates of a response, or none.
fn candidates(response: &Value) -> &[Value] {
    response.get("candidates").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default()
}

/// True when the response ends the generation: a candidate has a `finishReason`, or
/// the prompt was blocked (`promptFeedback.blockReason`), after which nothing follows.
pub fn is_final(response: &Value) -> bool {
    candidates(response).iter().any(|c| c.get("finishReason").is_some_and(Value::is_string))
        || str_at(response, &["promptFeedback", "blockReason"]).is_some()
}

/// Bytes of generated text (`candidates[].content.parts[].text`, thought summaries too).
pub fn text_bytes(response: &Value) -> u64 {
    candidates(response)
        .iter()
        .filter_map(|c| c.get("content")?.get("parts")?.as_array())
        .flatten()
        .filter_map(|part| part.get("text")?.as_str())
        .fold(0u64, |n, text| n.saturating_add(text.len() as u64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_errors_with_status_or_numeric_code() {
        let e =
            error_of(&json!({"error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}}))
                .unwrap();
        assert_eq!((e.code.as_deref(), e.message.as_str()), (Some("UNAVAILABLE"), "The model is overloaded."));
        let e = error_of(&json!({"error": {"code": 500}})).unwrap();
        assert_eq!((e.code.as_deref(), e.message.as_str()), (Some("500"), "upstream reported an error"));
        assert_eq!(error_of(&json!({"candidates": []})), None);
        assert_eq!(error_of(&json!({"error": null})), None);
    }

    #[test]
    fn final_on_finish_reason_or_blocked_prompt() {
        assert!(is_final(&json!({"candidates": [{"index": 0}, {"finishReason": "STOP"}]})));
        assert!(is_final(&json!({"promptFeedback": {"blockReason": "SAFETY"}})));
        assert!(!is_final(&json!({"candidates": [{"finishReason": null}]})));
        assert!(!is_final(&json!({"candidates": "nope"})));
    }

    #[test]
    fn counts_text_of_every_part_and_candidate() {
        let chunk = json!({"candidates": [
            {"content": {"parts": [{"text": "Thinking…", "thought": true}, {"text": "ab"}, {"functionCall": {"name": "f"}}]}},
            {"content": {"parts": [{"text": "c"}]}},
            {"content": {"role": "model"}}
        ]});
        assert_eq!(text_bytes(&chunk), 11 + 2 + 1);
        assert_eq!(text_bytes(&json!({})), 0);
    }
}
