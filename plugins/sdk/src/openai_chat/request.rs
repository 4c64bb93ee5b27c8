//! Upper-bound usage of a chat completion request, for the balance reservation.
//!
//! The shared rules (text by bytes, counts as JSON integers, repeated keys refused,
//! media allowances) are the SDK's, see [`crate::estimate`]. OpenRouter's
//! requests go through here too, so its extensions are read as well. Field by field:
//!
//! | Field | Rule |
//! | --- | --- |
//! | `max_completion_tokens`, `max_tokens` | each a JSON integer ≤ 2^31−1, else refused; output per choice = the larger of them, else the model default, within the model ceiling (reasoning, audio output and rejected prediction tokens all count toward it) |
//! | `n` | a JSON integer 1..=128 (OpenAI's range), else refused; output × `n`, the prompt once |
//! | `messages[].content[]` `text`, `refusal` parts | bytes |
//! | `image_url` part (`data:` URL or http(s) URL alike) | [`image_tokens`] per image: 48,169 for GPT-4o mini (2,833 + 8 tiles × 5,667), else the SDK's 8,192 (other models: ≤ 1,445 per tile formula, ≤ 3,779 per patch formula) |
//! | `input_audio` part (always inline base64) | 8,192 per item (the SDK's inline allowance; not a bound for long audio) |
//! | `file` part: `file_data` inline (base64 or `data:` URL) | 8,192 per item (as above) |
//! | `file` part: `file_id`, or `file_data` that is an http(s) URL | refused: a document by reference |
//! | `video_url` part (OpenRouter): `data:` URL / any other URL | 8,192 per item / refused |
//! | a part of any other type, or with no `type` | refused (its cost is unknown) |
//! | `messages[].audio` (an earlier audio answer by id) | refused: audio by reference |
//! | `tools[]` | `function` and `custom` tools are bytes; any other type (a provider-side tool) is refused |
//! | `web_search_options`, a `*-search-preview`/`*-search-api` model, OpenRouter's `web` plugin or `:online` model | fee [`WEB_SEARCH_FEE`] × `n`, and [`SEARCH_RESULT_TOKENS`] × `n` of prompt for the results; the `web` plugin's `max_results` must be 1..=10 |
//! | everything else (`stop`, `logit_bias`, `response_format`, `prediction`, …) | bytes |
//!
//! The search fee: OpenAI's usage object reports no search calls, so this plugin's usage
//! extraction reports no fee and the fee only reserves (a price entry without
//! `web_search` prices it at zero).

use super::check_format;
use crate::estimate::{
    self, BINARY_ITEM_TOKENS, PromptBound, SEARCH_RESULT_TOKENS, count, output_upper_bound, requested_max,
};
use crate::json::{Value, quoted};
use crate::{ApiFormat, ModelLimits, PluginError, PluginResult, Usage, empty_usage};

/// Request fields that cap generated tokens.
pub const MAX_OUTPUT_PATHS: &[&[&str]] = &[&["max_completion_tokens"], &["max_tokens"]];

/// Largest `n` (choices per request) OpenAI accepts.
pub const MAX_CHOICES: u64 = 128;

/// Fee name of a web search (the name the Anthropic plugin reports for the same thing).
pub const WEB_SEARCH_FEE: &str = "web_search";

/// Most results OpenRouter's `web` plugin may be asked for (its default is 5).
pub const MAX_WEB_RESULTS: u64 = 10;

/// Tokens of one high-detail image on GPT-4o mini: 2,833 base + 8 tiles × 5,667 (an
/// image fits 2048 × 2048, then its short side 768 px: at most 4 × 2 tiles of 512 px).
pub const GPT_4O_MINI_IMAGE_TOKENS: u64 = 2_833 + 8 * 5_667;

/// The allowance per image for `model`.
pub fn image_tokens(model: &str) -> u64 {
    if model.contains("gpt-4o-mini") { GPT_4O_MINI_IMAGE_TOKENS } else { BINARY_ITEM_TOKENS }
}

/// An upper bound of the usage a chat completion request can incur (see the module docs).
pub fn estimate(format: ApiFormat, request: &[u8], limits: &ModelLimits) -> PluginResult<Usage> {
    check_format(format)?;
    estimate_body(&estimate::parse_request(request)?, limits)
}

/// [`estimate()`] of a request already parsed (with [`estimate::parse_request`]), for a
/// plugin that reads fields of its own from the same body.
pub fn estimate_body(body: &Value, limits: &ModelLimits) -> PluginResult<Usage> {
    let choices = count(body.get("n"), "n", 1, MAX_CHOICES)?.unwrap_or(1);
    let model = body.get("model").and_then(Value::as_str).unwrap_or("");

    let mut prompt = PromptBound::of(body);
    if let Some(Value::Array(messages)) = body.get("messages") {
        for message in messages {
            if message.get("audio").is_some_and(|a| !a.is_null()) {
                return Err(invalid(
                    "`messages[].audio` refers to an earlier audio answer by id, which the gateway cannot size; send the conversation as text",
                ));
            }
            if let Some(Value::Array(parts)) = message.get("content") {
                for part in parts {
                    content_part(part, model, &mut prompt)?;
                }
            }
        }
    }
    check_tools(body)?;

    let mut usage = empty_usage();
    if web_search(body, model)? {
        estimate::add_fee(&mut usage, WEB_SEARCH_FEE, choices);
        prompt.add(SEARCH_RESULT_TOKENS.saturating_mul(choices));
    }
    usage.input_uncached_tokens = prompt.tokens();
    usage.output_tokens = output_upper_bound(requested_max(body, MAX_OUTPUT_PATHS)?, limits).saturating_mul(choices);
    Ok(usage)
}

fn invalid(message: &str) -> PluginError {
    PluginError::InvalidRequest(message.to_owned())
}

/// Applies the rule of one `messages[].content[]` element. A bare string is text.
fn content_part(part: &Value, model: &str, prompt: &mut PromptBound) -> PluginResult<()> {
    let Value::Object(fields) = part else {
        return Ok(());
    };
    let kind = fields.get("type").and_then(Value::as_str);
    match kind {
        Some("text" | "refusal") => {}
        Some("image_url") => {
            // `{"image_url": {"url": ...}}`, or the bare string some clients send.
            let url = match fields.get("image_url") {
                Some(Value::Object(image)) => image.get("url"),
                other => other,
            };
            if let Some(url) = url {
                prompt.media(url, image_tokens(model));
            }
        }
        Some("input_audio") => {
            if let Some(data) = fields.get("input_audio").and_then(|a| a.get("data")) {
                prompt.media(data, BINARY_ITEM_TOKENS);
            }
        }
        Some("file") => {
            let file = fields.get("file");
            if file.and_then(|f| f.get("file_id")).is_some_and(|id| !id.is_null()) {
                return Err(invalid(
                    "`file` content part with `file_id`: a document by reference cannot be sized; send it inline as `file_data` (base64) so its size bounds the cost",
                ));
            }
            if let Some(data) = file.and_then(|f| f.get("file_data")) {
                if is_remote_url(data) {
                    return Err(invalid(
                        "`file` content part whose `file_data` is a URL: a document by reference cannot be sized; send it inline (base64) so its size bounds the cost",
                    ));
                }
                prompt.media(data, BINARY_ITEM_TOKENS);
            }
        }
        Some("video_url") => {
            let url = fields.get("video_url").and_then(|v| v.get("url"));
            match url {
                Some(Value::String(s)) if s.starts_with("data:") => {
                    prompt.media(url.expect("matched"), BINARY_ITEM_TOKENS)
                }
                _ => {
                    return Err(invalid(
                        "`video_url` content part by URL: a video's length cannot be read from the request; send it inline as a `data:` URL",
                    ));
                }
            }
        }
        Some(other) => {
            return Err(PluginError::InvalidRequest(format!(
                "content part type {} is not one the gateway can size (text, image_url, input_audio, file)",
                quoted(other)
            )));
        }
        None => return Err(invalid("a content part object needs a string `type`")),
    }
    Ok(())
}

/// A string that points at something to fetch rather than carrying it.
fn is_remote_url(v: &Value) -> bool {
    v.as_str().is_some_and(|s| {
        let head = s.get(..8).unwrap_or(s).to_ascii_lowercase();
        head.starts_with("http://") || head.starts_with("https://")
    })
}

/// Refuses tools that run on the provider's side; function and custom tools are text.
fn check_tools(body: &Value) -> PluginResult<()> {
    let Some(Value::Array(tools)) = body.get("tools") else {
        return Ok(());
    };
    for tool in tools {
        match tool.get("type").and_then(Value::as_str) {
            None | Some("function" | "custom") => {}
            Some(other) => {
                return Err(PluginError::InvalidRequest(format!(
                    "tool type {} runs on the provider's side and its cost cannot be bounded from the request; only `function` and `custom` tools are accepted",
                    quoted(other)
                )));
            }
        }
    }
    Ok(())
}

/// Whether the request searches the web: `web_search_options`, a search model, or
/// OpenRouter's `web` plugin (`plugins: [{"id": "web"}]`, or a model ending `:online`).
fn web_search(body: &Value, model: &str) -> PluginResult<bool> {
    let mut search = body.get("web_search_options").is_some_and(|o| !o.is_null())
        || model.contains("-search-preview")
        || model.contains("-search-api")
        || model.contains(":online");
    if let Some(Value::Array(plugins)) = body.get("plugins") {
        for plugin in plugins.iter().filter(|p| p.get("id").and_then(Value::as_str) == Some("web")) {
            count(plugin.get("max_results"), "plugins[].max_results", 1, MAX_WEB_RESULTS)?;
            search = true;
        }
    }
    Ok(search)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::assert_refused;

    const LIMITS: ModelLimits = ModelLimits { default_max_output_tokens: 4096, max_output_tokens: 16384 };

    fn est(body: &str) -> PluginResult<Usage> {
        estimate(ApiFormat::OpenaiChat, body.as_bytes(), &LIMITS)
    }

    fn refused(body: &str, needle: &str) {
        assert_refused(est(body), needle, body);
    }

    fn user(content: &str) -> String {
        format!(r#"{{"model":"gpt-4o","max_tokens":10,"messages":[{{"role":"user","content":{content}}}]}}"#)
    }

    #[test]
    fn output_is_the_larger_maximum_then_the_default_within_the_ceiling() {
        let msgs = r#""messages":[{"role":"user","content":"hi"}]"#;
        let u = est(&format!(r#"{{"model":"o3",{msgs},"max_completion_tokens":900,"max_tokens":50}}"#)).unwrap();
        assert_eq!(u.output_tokens, 900);
        let u = est(&format!(r#"{{"model":"o3",{msgs},"max_completion_tokens":50,"max_tokens":900}}"#)).unwrap();
        assert_eq!(u.output_tokens, 900);
        let u = est(&format!(r#"{{"model":"gpt-4o",{msgs},"max_tokens":50}}"#)).unwrap();
        assert_eq!(u.output_tokens, 50);
        let u = est(&format!(r#"{{"model":"gpt-4o",{msgs}}}"#)).unwrap();
        assert_eq!(u.output_tokens, 4096);
        let u = est(&format!(r#"{{"model":"gpt-4o",{msgs},"max_tokens":null}}"#)).unwrap();
        assert_eq!(u.output_tokens, 4096);
        let u = est(&format!(r#"{{"model":"gpt-4o",{msgs},"max_tokens":1000000}}"#)).unwrap();
        assert_eq!(u.output_tokens, 16384);
        assert!(u.input_uncached_tokens >= "hi".len() as u64);
        assert_eq!((u.cache_read_tokens, u.reasoning_tokens), (0, 0));
        assert!(u.fees.is_empty());
    }

    #[test]
    fn output_limits_that_are_not_integers_are_refused() {
        for bad in [r#""100""#, "100.0", "1e2", "-1", "4294967296", "true", "[100]"] {
            refused(&format!(r#"{{"messages":[],"max_completion_tokens":{bad}}}"#), "`max_completion_tokens` must be");
            refused(&format!(r#"{{"messages":[],"max_tokens":{bad}}}"#), "`max_tokens` must be");
        }
        refused(&format!(r#"{{"messages":[],"max_tokens":"{}\u0000"}}"#, "9".repeat(3000)), "not a string");
    }

    #[test]
    fn output_scales_with_n_and_n_out_of_range_is_refused() {
        let one = est(r#"{"messages":[{"role":"user","content":"hello"}],"max_tokens":100,"n":1}"#).unwrap();
        let three = est(r#"{"messages":[{"role":"user","content":"hello"}],"max_tokens":100,"n":3}"#).unwrap();
        assert_eq!(three.output_tokens, 300);
        assert_eq!(three.input_uncached_tokens, one.input_uncached_tokens);
        let most = est(r#"{"messages":[],"max_tokens":100,"n":128}"#).unwrap();
        assert_eq!(most.output_tokens, 100 * MAX_CHOICES);
        assert_eq!(est(r#"{"messages":[],"max_tokens":100,"n":null}"#).unwrap().output_tokens, 100);
        for bad in ["100000", "129", "0", "-3", r#""8""#, "8.0", "2e1"] {
            refused(
                &format!(r#"{{"messages":[],"max_tokens":100,"n":{bad}}}"#),
                "`n` must be a JSON integer from 1 to 128",
            );
        }
        refused(r#"{"messages":[],"n":1,"max_tokens":100,"n":50}"#, "`n` appears twice");
    }

    #[test]
    fn images_count_per_item_whether_inline_or_by_url() {
        let text = est(&user(r#"[{"type":"text","text":"what is this?"}]"#)).unwrap().input_uncached_tokens;
        let by_url = est(&user(
            r#"[{"type":"text","text":"what is this?"},{"type":"image_url","image_url":{"url":"https://e.com/a.png","detail":"high"}}]"#,
        ))
        .unwrap()
        .input_uncached_tokens;
        assert!(by_url >= text + BINARY_ITEM_TOKENS && by_url < text + BINARY_ITEM_TOKENS + 100, "{by_url}");
        let b64 = "iVBORw0KGgo".repeat(20_000);
        let inline = est(&user(&format!(
            r#"[{{"type":"text","text":"what is this?"}},{{"type":"image_url","image_url":{{"url":"data:image/png;base64,{b64}"}}}}]"#
        )))
        .unwrap()
        .input_uncached_tokens;
        assert!(inline >= text + BINARY_ITEM_TOKENS && inline < text + BINARY_ITEM_TOKENS + 100, "{inline}");
        let bare = est(&user(r#"[{"type":"image_url","image_url":"https://e.com/a.png"}]"#)).unwrap();
        assert!(bare.input_uncached_tokens >= BINARY_ITEM_TOKENS);
        // GPT-4o mini bills far more per image.
        let mini = r#"{"model":"openai/gpt-4o-mini","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"https://e.com/a.png"}}]}]}"#;
        assert!(est(mini).unwrap().input_uncached_tokens >= GPT_4O_MINI_IMAGE_TOKENS);
        assert_eq!(GPT_4O_MINI_IMAGE_TOKENS, 48_169);
    }

    #[test]
    fn base64_outside_a_content_part_is_text() {
        let b64 = "QUFB".repeat(10_000);
        let body = format!(
            r#"{{"messages":[{{"role":"assistant","tool_calls":[{{"id":"c","type":"function","function":{{"name":"f","arguments":"{{\"data\":\"{b64}\"}}"}}}}]}}]}}"#
        );
        assert!(est(&body).unwrap().input_uncached_tokens >= 40_000);
        let body = format!(r#"{{"messages":[{{"role":"user","content":"data:image/png;base64,{b64}"}}]}}"#);
        assert!(est(&body).unwrap().input_uncached_tokens >= 40_000);
    }

    #[test]
    fn audio_and_files_inline_count_per_item_by_reference_are_refused() {
        let b64 = "SUQz".repeat(50_000);
        let u = est(&user(&format!(r#"[{{"type":"input_audio","input_audio":{{"data":"{b64}","format":"mp3"}}}}]"#)))
            .unwrap();
        assert!(u.input_uncached_tokens >= BINARY_ITEM_TOKENS && u.input_uncached_tokens < BINARY_ITEM_TOKENS + 200);
        let u = est(&user(&format!(
            r#"[{{"type":"file","file":{{"filename":"a.pdf","file_data":"data:application/pdf;base64,{b64}"}}}}]"#
        )))
        .unwrap();
        assert!(u.input_uncached_tokens < BINARY_ITEM_TOKENS + 200);
        refused(&user(r#"[{"type":"file","file":{"file_id":"file-abc"}}]"#), "`file_id`");
        refused(&user(r#"[{"type":"file","file":{"file_data":"HTTPS://e.com/a.pdf"}}]"#), "is a URL");
        refused(&user(r#"[{"type":"video_url","video_url":{"url":"https://e.com/a.mp4"}}]"#), "`video_url`");
        let u = est(&user(&format!(r#"[{{"type":"video_url","video_url":{{"url":"data:video/mp4;base64,{b64}"}}}}]"#)))
            .unwrap();
        assert!(u.input_uncached_tokens < BINARY_ITEM_TOKENS + 200);
        refused(
            r#"{"messages":[{"role":"assistant","audio":{"id":"audio_abc"}},{"role":"user","content":"again"}]}"#,
            "`messages[].audio`",
        );
    }

    #[test]
    fn unknown_parts_and_provider_side_tools_are_refused() {
        refused(&user(r#"[{"image":"iVBORw0KGgo="}]"#), "string `type`");
        refused(&user(r#"[{"type":"input_video","url":"https://e.com/v"}]"#), "`input_video`");
        let hostile = format!("x{}\u{0}", "y".repeat(3000));
        let body = serde_json::json!({"messages":[{"role":"user","content":[{"type": hostile}]}]}).to_string();
        refused(&body, "is not one the gateway can size");
        refused(r#"{"messages":[],"tools":[{"type":"web_search_preview"}]}"#, "`web_search_preview`");
        let ok = r#"{"messages":[],"tools":[{"type":"function","function":{"name":"f","parameters":{}}},{"type":"custom","custom":{"name":"g"}}]}"#;
        assert!(est(ok).is_ok());
        assert!(est(&user(r#"["plain string part"]"#)).is_ok());
    }

    #[test]
    fn web_search_reserves_a_fee_and_results_per_choice() {
        let plain = est(r#"{"model":"gpt-4o","messages":[],"max_tokens":10}"#).unwrap();
        let fee = |u: &Usage| u.fees.iter().find(|f| f.name == WEB_SEARCH_FEE).map(|f| f.count);
        let u = est(r#"{"model":"gpt-4o","messages":[],"max_tokens":10,"web_search_options":{}}"#).unwrap();
        assert_eq!(fee(&u), Some(1));
        assert!(u.input_uncached_tokens >= plain.input_uncached_tokens + SEARCH_RESULT_TOKENS);
        let u = est(r#"{"model":"gpt-4o-search-preview","messages":[],"n":2}"#).unwrap();
        assert_eq!(fee(&u), Some(2));
        assert!(u.input_uncached_tokens >= 2 * SEARCH_RESULT_TOKENS);
        let u = est(r#"{"model":"openai/gpt-4o:online","messages":[]}"#).unwrap();
        assert_eq!(fee(&u), Some(1));
        let u = est(r#"{"model":"x","messages":[],"plugins":[{"id":"web","max_results":5}]}"#).unwrap();
        assert_eq!(fee(&u), Some(1));
        refused(r#"{"model":"x","messages":[],"plugins":[{"id":"web","max_results":50}]}"#, "`plugins[].max_results`");
        refused(r#"{"model":"x","messages":[],"plugins":[{"id":"web","max_results":"5"}]}"#, "not a string");
        assert_eq!(fee(&est(r#"{"model":"x","messages":[],"web_search_options":null}"#).unwrap()), None);
    }

    #[test]
    fn bad_requests_and_formats_are_errors() {
        assert!(matches!(est("not json"), Err(PluginError::InvalidRequest(_))));
        assert!(matches!(est("[]"), Err(PluginError::InvalidRequest(_))));
        let r = estimate(ApiFormat::GeminiGenerate, b"{}", &LIMITS);
        assert_eq!(r, Err(PluginError::UnsupportedFormat(ApiFormat::GeminiGenerate)));
        // The host's self-test body.
        assert!(est(r#"{"model":"self-test","max_tokens":16}"#).is_ok());
    }
}
