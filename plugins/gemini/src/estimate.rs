//! Upper-bound usage of a `generateContent` request, for the balance reservation.
//!
//! The shared rules (text by bytes, counts as JSON integers, repeated keys refused,
//! media allowances) are the SDK's, see [`xjp_plugin_sdk::estimate`]. Google reads
//! requests with the protobuf JSON mapping, which takes every field in lowerCamelCase or
//! in its proto (snake_case) name, at every level, and integers as JSON numbers or as
//! strings; so each field below is read in either spelling, both spellings of one field
//! in one object are refused, and a count sent as a string is refused (the provider
//! would honour `"candidateCount": "8"`). Field by field:
//!
//! | Field | Rule |
//! | --- | --- |
//! | `generationConfig.maxOutputTokens` | a JSON integer ≤ 2^31−1, else refused; output per candidate = it, else the model default, within the model ceiling. It caps thinking and answer together (a 2.5 or 3 model stops with `MAX_TOKENS` when `thoughtsTokenCount + candidatesTokenCount` reaches it) |
//! | `generationConfig.candidateCount` | a JSON integer 0..=8 (8 is Gemini's documented maximum; 0 means 1), else refused; output × candidates |
//! | `generationConfig.thinkingConfig.thinkingBudget` | a JSON integer from −1 (dynamic) to 2^31−1, else refused; inside `maxOutputTokens` as above |
//! | `contents[].parts[]`, `systemInstruction.parts[]`, `functionResponse.parts[]`: `text` and other fields | bytes |
//! | `inlineData` with an `image/`, `audio/`, `video/` or `application/pdf` MIME type | 8,192 per item (images: ≤ 2,240 tokens at Gemini 3's ultra-high resolution, 258 per 768 px tile on 2.x; audio, video, PDF: the SDK's inline allowance, not a bound for long media) |
//! | `inlineData` of any other MIME type (text, code, JSON) | bytes of its base64, which are more than the bytes of the text it carries |
//! | `fileData` with an `image/` MIME type | 8,192 per image |
//! | `fileData` of any other or no MIME type | refused: a document, audio or video by reference cannot be sized |
//! | `cachedContent` | refused: a cache's size is not in the request (and the gateway does not create caches) |
//! | `tools[]`: `functionDeclarations`, `computerUse` | bytes |
//! | `tools[]`: `googleSearch`, `googleSearchRetrieval` | fee `google_search` × candidates (the usage extraction reports one per grounded response), and 32,768 tokens of prompt per candidate for the results Google bills as `toolUsePromptTokenCount` |
//! | `tools[]`: anything else (`urlContext`, `codeExecution`, `fileSearch`, `googleMaps`, `retrieval`, …) | refused: it runs on Google's side and what it adds to the prompt cannot be bounded from the request |
//!
//! The fee name is the one [`crate::usage`] reports ([`GOOGLE_SEARCH_FEE`]).

use crate::usage::GOOGLE_SEARCH_FEE;
use xjp_plugin_sdk::estimate::{
    self, BINARY_ITEM_TOKENS, MAX_COUNT, PromptBound, SEARCH_RESULT_TOKENS, count, describe, output_upper_bound,
};
use xjp_plugin_sdk::json::{Value, quoted};
use xjp_plugin_sdk::{ModelLimits, PluginError, PluginResult, Usage, empty_usage};

/// Gemini's documented maximum `candidateCount`.
pub const MAX_CANDIDATES: u64 = 8;

/// The value of a field in either spelling; both in one object is refused.
fn field<'a>(object: &'a Value, camel: &str, snake: &str) -> PluginResult<Option<&'a Value>> {
    match (object.get(camel), object.get(snake)) {
        (Some(_), Some(_)) => Err(PluginError::InvalidRequest(format!(
            "`{camel}` and `{snake}` are two spellings of one field; send one of them"
        ))),
        (camel, snake) => Ok(camel.or(snake)),
    }
}

/// A string field in either spelling.
fn str_field<'a>(object: &'a Value, camel: &str, snake: &str) -> PluginResult<Option<&'a str>> {
    Ok(field(object, camel, snake)?.and_then(Value::as_str))
}

/// An upper bound of the usage `request` can incur (see the module docs).
pub fn upper_bound(request: &[u8], limits: &ModelLimits) -> PluginResult<Usage> {
    let body = estimate::parse_request(request)?;
    let config = field(&body, "generationConfig", "generation_config")?;
    let (mut max_output, mut candidates) = (None, None);
    if let Some(config) = config {
        let max = field(config, "maxOutputTokens", "max_output_tokens")?;
        max_output = count(max, "generationConfig.maxOutputTokens", 0, MAX_COUNT)?;
        let n = field(config, "candidateCount", "candidate_count")?;
        candidates = count(n, "generationConfig.candidateCount", 0, MAX_CANDIDATES)?;
        if let Some(thinking) = field(config, "thinkingConfig", "thinking_config")? {
            thinking_budget(field(thinking, "thinkingBudget", "thinking_budget")?)?;
        }
    }
    let candidates = candidates.unwrap_or(1).max(1);
    if field(&body, "cachedContent", "cached_content")?.is_some_and(|c| !c.is_null()) {
        return Err(PluginError::InvalidRequest(
            "`cachedContent` refers to a cache whose size is not in the request; send the content itself".into(),
        ));
    }

    let mut prompt = PromptBound::of(&body);
    if let Some(Value::Array(contents)) = body.get("contents") {
        for content in contents {
            parts(content, &mut prompt)?;
        }
    }
    if let Some(system) = field(&body, "systemInstruction", "system_instruction")? {
        parts(system, &mut prompt)?;
    }

    let mut usage = empty_usage();
    if searches(&body)? {
        estimate::add_fee(&mut usage, GOOGLE_SEARCH_FEE, candidates);
        prompt.add(SEARCH_RESULT_TOKENS.saturating_mul(candidates));
    }
    usage.input_uncached_tokens = prompt.tokens();
    usage.output_tokens = output_upper_bound(max_output, limits).saturating_mul(candidates);
    Ok(usage)
}

/// Checks a thinking budget: −1 (dynamic) or a count.
fn thinking_budget(budget: Option<&Value>) -> PluginResult<()> {
    match budget {
        None | Some(Value::Null) => Ok(()),
        Some(v) if v.as_i64().is_some_and(|b| b == -1 || (0..=MAX_COUNT as i64).contains(&b)) => Ok(()),
        Some(v) => Err(PluginError::InvalidRequest(format!(
            "`generationConfig.thinkingConfig.thinkingBudget` must be a JSON integer from -1 to {MAX_COUNT}, not {}",
            describe(v)
        ))),
    }
}

/// Applies the part rules to the `parts` of a `Content` (or of a function response).
fn parts(content: &Value, prompt: &mut PromptBound) -> PluginResult<()> {
    let Some(Value::Array(items)) = content.get("parts") else {
        return Ok(());
    };
    for part in items {
        if let Some(inline) = field(part, "inlineData", "inline_data")? {
            let mime = str_field(inline, "mimeType", "mime_type")?.unwrap_or("");
            if let Some(data) = inline.get("data").filter(|_| is_media(mime)) {
                prompt.media(data, BINARY_ITEM_TOKENS);
            }
        }
        if let Some(file) = field(part, "fileData", "file_data")? {
            let mime = str_field(file, "mimeType", "mime_type")?.unwrap_or("");
            if !mime.starts_with("image/") {
                return Err(PluginError::InvalidRequest(format!(
                    "a `fileData` part of MIME type {} cannot be sized (only images may be sent by URI); send documents/audio/video inline (base64) so their size bounds the cost",
                    quoted(mime)
                )));
            }
            if let Some(uri) = field(file, "fileUri", "file_uri")? {
                prompt.media(uri, BINARY_ITEM_TOKENS);
            }
        }
        if let Some(response) = field(part, "functionResponse", "function_response")? {
            parts(response, prompt)?;
        }
    }
    Ok(())
}

/// Whether inline data of this MIME type is billed per item rather than as its text.
fn is_media(mime: &str) -> bool {
    let mime = mime.to_ascii_lowercase();
    ["image/", "audio/", "video/"].iter().any(|p| mime.starts_with(p)) || mime == "application/pdf"
}

/// Refuses tools that run on Google's side, except Search grounding; whether it is asked.
fn searches(body: &Value) -> PluginResult<bool> {
    let Some(Value::Array(tools)) = body.get("tools") else {
        return Ok(false);
    };
    let mut search = false;
    for tool in tools {
        let Value::Object(tool) = tool else {
            continue;
        };
        for (name, value) in tool {
            match name.as_str() {
                "functionDeclarations" | "function_declarations" | "computerUse" | "computer_use" => {}
                "googleSearch" | "google_search" | "googleSearchRetrieval" | "google_search_retrieval" => {
                    search |= !value.is_null();
                }
                other => {
                    return Err(PluginError::InvalidRequest(format!(
                        "tool {} runs on Google's side and what it adds to the prompt cannot be bounded from the request",
                        quoted(other)
                    )));
                }
            }
        }
    }
    Ok(search)
}

#[cfg(test)]
mod tests {
    use super::*;
    use xjp_plugin_sdk::Fee;
    use xjp_plugin_sdk::testing::assert_refused;

    const LIMITS: ModelLimits = ModelLimits { default_max_output_tokens: 8192, max_output_tokens: 65_536 };

    fn est(body: &str) -> Usage {
        upper_bound(body.as_bytes(), &LIMITS).unwrap_or_else(|e| panic!("{body:.200}: {e:?}"))
    }

    fn refused(body: &str, needle: &str) {
        assert_refused(upper_bound(body.as_bytes(), &LIMITS), needle, body);
    }

    fn with_parts(parts: &str) -> String {
        format!(r#"{{"contents":[{{"role":"user","parts":{parts}}}],"generationConfig":{{"maxOutputTokens":10}}}}"#)
    }

    #[test]
    fn reads_the_maximum_in_either_spelling_at_either_level() {
        let hello = r#""contents":[{"role":"user","parts":[{"text":"Hello"}]}]"#;
        assert_eq!(est(&format!(r#"{{{hello},"generationConfig":{{"maxOutputTokens":256}}}}"#)).output_tokens, 256);
        assert_eq!(est(&format!(r#"{{{hello},"generation_config":{{"max_output_tokens":512}}}}"#)).output_tokens, 512);
        assert_eq!(est(&format!(r#"{{{hello},"generationConfig":{{"max_output_tokens":300}}}}"#)).output_tokens, 300);
        assert_eq!(est(&format!(r#"{{{hello},"generation_config":{{"maxOutputTokens":400}}}}"#)).output_tokens, 400);
        let none = est(&format!("{{{hello}}}"));
        assert_eq!(none.output_tokens, 8192);
        assert!(none.input_uncached_tokens >= 5);
        assert!(none.fees.is_empty());
        assert_eq!(est(r#"{"contents":[],"generationConfig":{"maxOutputTokens":1000000}}"#).output_tokens, 65_536);
    }

    #[test]
    fn several_candidates_multiply_the_output_bound() {
        let three = r#"{"contents":[],"generationConfig":{"maxOutputTokens":100,"candidateCount":3}}"#;
        assert_eq!(est(three).output_tokens, 300);
        let zero = r#"{"contents":[],"generationConfig":{"maxOutputTokens":100,"candidateCount":0}}"#;
        assert_eq!(est(zero).output_tokens, 100);
        assert_eq!(est(r#"{"contents":[],"generation_config":{"candidate_count":2}}"#).output_tokens, 16_384);
        assert_eq!(est(r#"{"contents":[],"generation_config":{"candidateCount":8}}"#).output_tokens, 8 * 8192);
    }

    #[test]
    fn counts_sent_as_strings_floats_negatives_or_too_large_are_refused() {
        for bad in [r#""8""#, "8.0", "8e0", "-1", "9", "4294967304", "true", "[8]"] {
            refused(
                &format!(r#"{{"contents":[],"generationConfig":{{"candidateCount":{bad}}}}}"#),
                "`generationConfig.candidateCount` must be a JSON integer from 0 to 8",
            );
        }
        for bad in [r#""100""#, "100.5", "1e2", "-5", "2147483648"] {
            refused(
                &format!(r#"{{"contents":[],"generation_config":{{"max_output_tokens":{bad}}}}}"#),
                "`generationConfig.maxOutputTokens` must be",
            );
        }
        for bad in [r#""1024""#, "1024.5", "-2", "2147483648"] {
            refused(
                &format!(r#"{{"contents":[],"generationConfig":{{"thinkingConfig":{{"thinkingBudget":{bad}}}}}}}"#),
                "thinkingBudget` must be a JSON integer from -1",
            );
        }
        assert_eq!(
            est(
                r#"{"contents":[],"generationConfig":{"thinking_config":{"thinking_budget":-1},"maxOutputTokens":50}}"#
            )
            .output_tokens,
            50
        );
        let long = format!(r#"{{"contents":[],"generationConfig":{{"candidateCount":"{}\u0000"}}}}"#, "8".repeat(3000));
        refused(&long, "not a string");
    }

    #[test]
    fn two_spellings_of_one_field_are_refused() {
        refused(
            r#"{"contents":[],"generationConfig":{"candidateCount":1,"candidate_count":8}}"#,
            "`candidateCount` and `candidate_count`",
        );
        refused(
            r#"{"contents":[],"generationConfig":{"maxOutputTokens":10},"generation_config":{"max_output_tokens":60000}}"#,
            "`generationConfig` and `generation_config`",
        );
        refused(
            r#"{"contents":[],"generationConfig":{"maxOutputTokens":10,"max_output_tokens":60000}}"#,
            "two spellings",
        );
        refused(
            &with_parts(
                r#"[{"inlineData":{"mimeType":"image/png","data":"AA=="},"inline_data":{"mime_type":"text/plain","data":"AA=="}}]"#,
            ),
            "`inlineData` and `inline_data`",
        );
        refused(
            &with_parts(r#"[{"inlineData":{"mimeType":"image/png","mime_type":"text/plain","data":"AA=="}}]"#),
            "`mimeType` and `mime_type`",
        );
        refused(r#"{"contents":[],"generationConfig":{"candidateCount":1,"candidateCount":8}}"#, "appears twice");
    }

    #[test]
    fn media_inline_counts_per_item_and_text_files_by_their_bytes() {
        let base = est(&with_parts(r#"[{"text":"describe"}]"#)).input_uncached_tokens;
        let b64 = "iVBORw0KGgo".repeat(20_000);
        for (mime, key) in [
            ("image/png", "inlineData\":{\"mimeType"),
            ("video/mp4", "inline_data\":{\"mime_type"),
            ("application/pdf", "inlineData\":{\"mime_type"),
        ] {
            let body = with_parts(&format!(r#"[{{"text":"describe"}},{{"{key}":"{mime}","data":"{b64}"}}}}]"#));
            let u = est(&body).input_uncached_tokens;
            assert!(u >= base + BINARY_ITEM_TOKENS && u < base + BINARY_ITEM_TOKENS + 100, "{mime}: {u}");
        }
        let body = with_parts(&format!(r#"[{{"inlineData":{{"mimeType":"text/plain","data":"{b64}"}}}}]"#));
        assert!(est(&body).input_uncached_tokens >= b64.len() as u64);
        // Inside a function response too.
        let body = with_parts(&format!(
            r#"[{{"functionResponse":{{"name":"f","response":{{}},"parts":[{{"inlineData":{{"mimeType":"image/png","data":"{b64}"}}}}]}}}}]"#
        ));
        assert!(est(&body).input_uncached_tokens < BINARY_ITEM_TOKENS + 200);
        // Base64 in a function call's arguments is text.
        let body = with_parts(&format!(r#"[{{"functionCall":{{"name":"f","args":{{"data":"{b64}"}}}}}}]"#));
        assert!(est(&body).input_uncached_tokens >= b64.len() as u64);
    }

    #[test]
    fn files_by_uri_are_images_or_refused() {
        let u = est(&with_parts(
            r#"[{"fileData":{"mimeType":"image/jpeg","fileUri":"https://generativelanguage.googleapis.com/v1beta/files/abc"}}]"#,
        ));
        assert!(u.input_uncached_tokens >= BINARY_ITEM_TOKENS);
        let u = est(&with_parts(r#"[{"file_data":{"mime_type":"image/png","file_uri":"gs://b/cat.png"}}]"#));
        assert!(u.input_uncached_tokens >= BINARY_ITEM_TOKENS);
        for mime in ["video/mp4", "audio/mp3", "application/pdf", "text/plain"] {
            refused(
                &with_parts(&format!(r#"[{{"fileData":{{"mimeType":"{mime}","fileUri":"gs://b/x"}}}}]"#)),
                "send documents/audio/video inline",
            );
        }
        refused(&with_parts(r#"[{"fileData":{"fileUri":"https://www.youtube.com/watch?v=x"}}]"#), "MIME type ``");
        let system = r#"{"contents":[],"system_instruction":{"parts":[{"fileData":{"mimeType":"application/pdf","fileUri":"gs://b/x.pdf"}}]}}"#;
        refused(system, "`fileData` part");
        refused(r#"{"contents":[],"cachedContent":"cachedContents/abc"}"#, "`cachedContent`");
    }

    #[test]
    fn search_grounding_reserves_a_fee_and_results_per_candidate() {
        let plain = est(r#"{"contents":[],"generationConfig":{"maxOutputTokens":10}}"#);
        for tool in ["googleSearch", "google_search", "googleSearchRetrieval"] {
            let u = est(&format!(
                r#"{{"contents":[],"tools":[{{"{tool}":{{}}}}],"generationConfig":{{"maxOutputTokens":10}}}}"#
            ));
            assert_eq!(u.fees, vec![Fee { name: GOOGLE_SEARCH_FEE.into(), count: 1 }]);
            assert!(u.input_uncached_tokens >= plain.input_uncached_tokens + SEARCH_RESULT_TOKENS);
        }
        let two = est(r#"{"contents":[],"tools":[{"googleSearch":{}}],"generationConfig":{"candidateCount":2}}"#);
        assert_eq!(two.fees, vec![Fee { name: GOOGLE_SEARCH_FEE.into(), count: 2 }]);
        assert!(two.input_uncached_tokens >= 2 * SEARCH_RESULT_TOKENS);
        let functions = r#"{"contents":[],"tools":[{"functionDeclarations":[{"name":"f"}]}]}"#;
        assert!(est(functions).fees.is_empty());
        for tool in ["urlContext", "url_context", "codeExecution", "fileSearch", "googleMaps", "retrieval"] {
            refused(&format!(r#"{{"contents":[],"tools":[{{"{tool}":{{}}}}]}}"#), "runs on Google's side");
        }
        let hostile = serde_json::json!({"contents": [], "tools": [{ format!("{}\u{0}", "t".repeat(3000)): {} }]});
        refused(&hostile.to_string(), "…`");
    }

    #[test]
    fn rejects_bodies_that_are_not_objects() {
        assert!(matches!(upper_bound(b"{", &LIMITS), Err(PluginError::InvalidRequest(_))));
        assert!(matches!(upper_bound(b"[{}]", &LIMITS), Err(PluginError::InvalidRequest(_))));
        // The host's self-test body.
        assert!(upper_bound(br#"{"model":"self-test","max_tokens":16}"#, &LIMITS).is_ok());
    }
}
