//! The hold is a hard cap: every forwarded request carries an output limit no larger than
//! the one its hold was priced with. The client's limit is read (a JSON integer ≥ 1, else a
//! 400), lowered to the model's ceiling, or the model's default is added when it set none;
//! the plugin's estimate then reads the same rewritten body.
//!
//! | format | field(s) read | field written when absent |
//! |---|---|---|
//! | OpenAI chat | `max_completion_tokens`, `max_tokens` (both set to the cap; for a provider whose `output_limit_field` is `max_tokens`, `max_completion_tokens` becomes `max_tokens`) | the provider's `output_limit_field` |
//! | Anthropic | `max_tokens` | `max_tokens` |
//! | Gemini | `generationConfig.maxOutputTokens` (or the snake_case spellings; both → 400) | `generationConfig.maxOutputTokens` |

use super::error::GatewayError;
use crate::plugins::ApiFormat;
use crate::plugins::bindings::ModelLimits;
use serde_json::{Map, Value};

/// Where a format keeps its output limit.
#[derive(Debug, Clone, Copy)]
pub struct CapRule<'a> {
    pub format: ApiFormat,
    /// OpenAI format: the field added when the request sets none.
    pub openai_field: &'a str,
    pub limits: ModelLimits,
}

/// A limit the client sent: a JSON integer ≥ 1 (strings, floats, negatives and zero are refused).
fn requested(object: &Map<String, Value>, field: &str) -> Result<Option<u64>, GatewayError> {
    match object.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .filter(|n| *n >= 1)
            .map(Some)
            .ok_or_else(|| GatewayError::InvalidRequest(format!("`{field}` must be a positive integer"))),
    }
}

/// The one present key among two spellings; both present is ambiguous and refused.
fn one_of<'k>(object: &Map<String, Value>, camel: &'k str, snake: &'k str) -> Result<Option<&'k str>, GatewayError> {
    match (object.contains_key(camel), object.contains_key(snake)) {
        (true, true) => Err(GatewayError::InvalidRequest(format!("send `{camel}` or `{snake}`, not both"))),
        (true, false) => Ok(Some(camel)),
        (false, true) => Ok(Some(snake)),
        (false, false) => Ok(None),
    }
}

/// Caps the output limit in `object` (a top-level request, or Gemini's generation config)
/// over `fields`, adding `add` when none is set. Returns the cap.
fn cap_fields(
    object: &mut Map<String, Value>,
    fields: &[&str],
    add: &str,
    limits: &ModelLimits,
) -> Result<u64, GatewayError> {
    let mut asked: Option<u64> = None;
    for field in fields {
        if let Some(n) = requested(object, field)? {
            asked = Some(asked.map_or(n, |a| a.min(n)));
        }
    }
    let cap = asked.unwrap_or(limits.default_max_output_tokens).min(limits.max_output_tokens).max(1);
    let present: Vec<&str> = fields.iter().copied().filter(|f| object.get(*f).is_some_and(|v| !v.is_null())).collect();
    if present.is_empty() {
        object.insert(add.to_string(), Value::from(cap));
    }
    for field in present {
        object.insert(field.to_string(), Value::from(cap));
    }
    Ok(cap)
}

/// Applies the cap to the top-level `object` of a request; returns the per-answer cap.
pub fn cap(object: &mut Map<String, Value>, rule: &CapRule<'_>) -> Result<u64, GatewayError> {
    match rule.format {
        ApiFormat::OpenaiChat => {
            let cap = cap_fields(object, &["max_completion_tokens", "max_tokens"], rule.openai_field, &rule.limits)?;
            // A provider that reads only `max_tokens` would ignore the client's
            // `max_completion_tokens`: the cap goes in the field it reads.
            if rule.openai_field == "max_tokens" && object.remove("max_completion_tokens").is_some() {
                object.insert("max_tokens".to_string(), Value::from(cap));
            }
            Ok(cap)
        }
        ApiFormat::AnthropicMessages => cap_fields(object, &["max_tokens"], "max_tokens", &rule.limits),
        ApiFormat::GeminiGenerate => {
            let key = one_of(object, "generationConfig", "generation_config")?.unwrap_or("generationConfig");
            let config = object.entry(key.to_string()).or_insert_with(|| Value::Object(Map::new()));
            let Value::Object(config) = config else {
                return Err(GatewayError::InvalidRequest(format!("`{key}` must be an object")));
            };
            let field = one_of(config, "maxOutputTokens", "max_output_tokens")?.unwrap_or("maxOutputTokens");
            cap_fields(config, &[field], field, &rule.limits)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const LIMITS: ModelLimits = ModelLimits { default_max_output_tokens: 1000, max_output_tokens: 4000 };

    fn run(format: ApiFormat, body: Value) -> Result<(u64, Value), GatewayError> {
        let Value::Object(mut map) = body else { panic!("object") };
        let rule = CapRule { format, openai_field: "max_completion_tokens", limits: LIMITS };
        cap(&mut map, &rule).map(|c| (c, Value::Object(map)))
    }

    #[test]
    fn openai_adds_lowers_and_keeps() {
        let (c, v) = run(ApiFormat::OpenaiChat, json!({"messages": []})).unwrap();
        assert_eq!((c, &v["max_completion_tokens"]), (1000, &json!(1000)));
        let (c, v) = run(ApiFormat::OpenaiChat, json!({"max_tokens": 1_000_000})).unwrap();
        assert_eq!((c, &v["max_tokens"]), (4000, &json!(4000)));
        assert!(v.get("max_completion_tokens").is_none(), "the client's own field is the one capped");
        let (c, v) = run(ApiFormat::OpenaiChat, json!({"max_tokens": 50, "max_completion_tokens": 9000})).unwrap();
        assert_eq!((c, &v["max_tokens"], &v["max_completion_tokens"]), (50, &json!(50), &json!(50)));
        let (c, _) = run(ApiFormat::OpenaiChat, json!({"max_tokens": null})).unwrap();
        assert_eq!(c, 1000);
    }

    #[test]
    fn a_max_tokens_provider_gets_the_cap_in_max_tokens() {
        let rule = CapRule { format: ApiFormat::OpenaiChat, openai_field: "max_tokens", limits: LIMITS };
        let mut map = json!({"max_completion_tokens": 9000}).as_object().unwrap().clone();
        assert_eq!(cap(&mut map, &rule).unwrap(), 4000);
        assert_eq!((map.get("max_tokens"), map.get("max_completion_tokens")), (Some(&json!(4000)), None));
        let mut map = json!({"max_completion_tokens": 10, "max_tokens": 20}).as_object().unwrap().clone();
        assert_eq!(cap(&mut map, &rule).unwrap(), 10);
        assert_eq!((map.get("max_tokens"), map.get("max_completion_tokens")), (Some(&json!(10)), None));
    }

    #[test]
    fn odd_types_are_refused() {
        for bad in [json!("100000"), json!(10.5), json!(-1), json!(0), json!(true), json!({"n": 1}), json!([1])] {
            let e = run(ApiFormat::AnthropicMessages, json!({"max_tokens": bad})).unwrap_err();
            assert!(matches!(e, GatewayError::InvalidRequest(ref m) if m.contains("max_tokens")), "{bad}: {e}");
        }
        let e = run(ApiFormat::GeminiGenerate, json!({"generationConfig": {"maxOutputTokens": "60000"}})).unwrap_err();
        assert!(e.to_string().contains("maxOutputTokens"));
    }

    #[test]
    fn gemini_caps_inside_the_generation_config() {
        let (c, v) = run(ApiFormat::GeminiGenerate, json!({"contents": []})).unwrap();
        assert_eq!((c, &v["generationConfig"]["maxOutputTokens"]), (1000, &json!(1000)));
        let (c, v) =
            run(ApiFormat::GeminiGenerate, json!({"generation_config": {"max_output_tokens": 9, "temperature": 1}}))
                .unwrap();
        assert_eq!((c, &v["generation_config"]["max_output_tokens"]), (9, &json!(9)));
        assert_eq!(v["generation_config"]["temperature"], json!(1));
        assert!(run(ApiFormat::GeminiGenerate, json!({"generationConfig": {}, "generation_config": {}})).is_err());
        let both = json!({"generationConfig": {"maxOutputTokens": 5, "max_output_tokens": 99999}});
        assert!(run(ApiFormat::GeminiGenerate, both).is_err());
        assert!(run(ApiFormat::GeminiGenerate, json!({"generationConfig": "x"})).is_err());
    }
}
