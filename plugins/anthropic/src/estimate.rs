//! Upper-bound usage of a Messages request, for the balance reservation.
//!
//! The shared rules (text by bytes, counts as JSON integers, repeated keys refused,
//! media allowances) are the SDK's, see [`xjp_plugin_sdk::estimate`]. Field by field:
//!
//! | Field | Rule |
//! | --- | --- |
//! | `max_tokens` | a JSON integer ≤ 2^31−1, else refused; output = it, else the model default, within the model ceiling. It bounds the whole message: thinking and the turns of a server-tool loop included |
//! | `thinking.budget_tokens` | a JSON integer ≤ 2^31−1, else refused; inside `max_tokens` (Anthropic requires it to be below) |
//! | text, `tool_use`, `thinking`, `*_tool_result` and other blocks | bytes |
//! | `image` block, `source.type` `base64`, `url` or `file` | 8,192 per image (Anthropic's images are about 1,600 tokens at most) |
//! | `document` block, `source.type` `base64` (PDF) | 8,192 per item (the SDK's inline allowance; not a bound for long PDFs) |
//! | `document` block, `source.type` `text` / `content` | bytes / its blocks by these rules |
//! | `document` block, `source.type` `url` or `file`; any other source type | refused: a document by reference |
//! | `container_upload` block | refused: a file by reference |
//! | blocks inside `tool_result.content` | by these rules |
//! | `tools[]` present | + 1,024 for the tool-use system prompt Anthropic adds (346 tokens on current models, 530 at most on older ones) |
//! | custom tools (no `type`, or `custom`) | bytes |
//! | `bash_*`, `text_editor_*`, `computer_*`, `memory_*` tools | + 4,096 each for the definition Anthropic supplies (computer use: 735 + a 499-token system prompt) |
//! | `web_search_*` tool | `max_uses` required (1..=100); fee `web_search` × `max_uses`; + 4,096 for its definition; each search's results 32,768 tokens of prompt (the SDK's allowance) |
//! | `web_fetch_*` tool | `max_uses` (1..=100) and `max_content_tokens` required; fee `web_fetch` × `max_uses`; + 4,096; each fetch `max_content_tokens` of prompt |
//! | any other tool type (code execution, tool search, MCP toolsets, …) | refused: it runs on Anthropic's side with no bound on its calls or results |
//! | `mcp_servers`, `container` | refused, for the same reason |
//! | server-tool loop | with `U` = the sum of `max_uses`, the request is up to `U + 1` sampling iterations and usage sums them: each iteration reads the prompt `P` again plus what earlier ones added (results ≤ `A` per call, output ≤ `max_tokens`): prompt ≤ `(U+1)·P + (A + max_tokens)·U(U+1)/2` |
//! | `cache_control` markers | the whole prompt bound moves to the cache-write bucket (1 h if any marker asks `"ttl": "1h"`, else 5 min), since writes cost more than input |
//!
//! Fee names are those [`crate::usage`] reports ([`WEB_SEARCH_FEE`], [`WEB_FETCH_FEE`]).

use crate::usage::{WEB_FETCH_FEE, WEB_SEARCH_FEE};
use xjp_plugin_sdk::estimate::{
    self, BINARY_ITEM_TOKENS, MAX_COUNT, PromptBound, SEARCH_RESULT_TOKENS, count, output_upper_bound,
};
use xjp_plugin_sdk::json::{Value, quoted};
use xjp_plugin_sdk::{ModelLimits, PluginError, PluginResult, Usage, empty_usage};

/// Tokens allowed for the system prompt Anthropic adds when a request has tools.
pub const TOOL_USE_SYSTEM_TOKENS: u64 = 1_024;
/// Tokens allowed for the definition of each Anthropic-defined (typed) tool.
pub const TYPED_TOOL_TOKENS: u64 = 4_096;
/// The most calls one server tool may be allowed (`max_uses`).
pub const MAX_TOOL_USES: u64 = 100;

/// The most expensive cache lifetime a request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum CacheAsk {
    None,
    FiveMinutes,
    OneHour,
}

/// The longest TTL among the `cache_control` markers anywhere in `v`.
fn cache_ask(v: &Value) -> CacheAsk {
    match v {
        Value::Object(map) => map
            .iter()
            .map(|(key, value)| {
                let own = if key == "cache_control" && value.is_object() {
                    if value.get("ttl").and_then(Value::as_str) == Some("1h") {
                        CacheAsk::OneHour
                    } else {
                        CacheAsk::FiveMinutes
                    }
                } else {
                    CacheAsk::None
                };
                own.max(cache_ask(value))
            })
            .max()
            .unwrap_or(CacheAsk::None),
        Value::Array(items) => items.iter().map(cache_ask).max().unwrap_or(CacheAsk::None),
        _ => CacheAsk::None,
    }
}

/// What the request's server tools allow.
#[derive(Debug, Default)]
struct ServerTools {
    /// Sum of `max_uses`.
    uses: u64,
    /// The largest prompt one call may add.
    per_use: u64,
    web_search: u64,
    web_fetch: u64,
}

/// An upper bound of the usage `request` can incur (see the module docs).
pub fn upper_bound(request: &[u8], limits: &ModelLimits) -> PluginResult<Usage> {
    let body = estimate::parse_request(request)?;
    let max_tokens = count(body.get("max_tokens"), "max_tokens", 0, MAX_COUNT)?;
    if let Some(thinking) = body.get("thinking") {
        count(thinking.get("budget_tokens"), "thinking.budget_tokens", 0, MAX_COUNT)?;
    }
    for field in ["mcp_servers", "container"] {
        if body.get(field).is_some_and(|v| !v.is_null()) {
            return Err(PluginError::InvalidRequest(format!(
                "`{field}` runs tools on Anthropic's side whose cost cannot be bounded from the request"
            )));
        }
    }

    let mut prompt = PromptBound::of(&body);
    if let Some(Value::Array(system)) = body.get("system") {
        blocks(system, &mut prompt)?;
    }
    if let Some(Value::Array(messages)) = body.get("messages") {
        for message in messages {
            if let Some(Value::Array(content)) = message.get("content") {
                blocks(content, &mut prompt)?;
            }
        }
    }
    let server = tools(&body, &mut prompt)?;

    let output = output_upper_bound(max_tokens, limits);
    let mut usage = empty_usage();
    usage.output_tokens = output;
    usage.input_uncached_tokens = if server.uses == 0 {
        prompt.tokens()
    } else {
        let iterations = server.uses.saturating_add(1);
        let triangle = server.uses.saturating_mul(iterations) / 2;
        iterations
            .saturating_mul(prompt.tokens())
            .saturating_add(server.per_use.saturating_add(output).saturating_mul(triangle))
    };
    estimate::add_fee(&mut usage, WEB_SEARCH_FEE, server.web_search);
    estimate::add_fee(&mut usage, WEB_FETCH_FEE, server.web_fetch);

    const MARKER: &[u8] = b"cache_control";
    if request.windows(MARKER.len()).any(|w| w == MARKER) {
        let prompt = usage.input_uncached_tokens;
        match cache_ask(&body) {
            CacheAsk::None => {}
            CacheAsk::FiveMinutes => {
                usage.input_uncached_tokens = 0;
                usage.cache_write_5m_tokens = prompt;
            }
            CacheAsk::OneHour => {
                usage.input_uncached_tokens = 0;
                usage.cache_write_1h_tokens = prompt;
            }
        }
    }
    Ok(usage)
}

/// Applies the block rules to a `content` (or `system`) array.
fn blocks(content: &[Value], prompt: &mut PromptBound) -> PluginResult<()> {
    for block in content {
        let source = block.get("source");
        let source_type = source.and_then(|s| s.get("type")).and_then(Value::as_str);
        match block.get("type").and_then(Value::as_str) {
            Some("image") => {
                let data = match source_type {
                    Some("base64") => "data",
                    Some("url") => "url",
                    Some("file") => "file_id",
                    _ => return Err(unknown_source("image", source_type)),
                };
                if let Some(node) = source.and_then(|s| s.get(data)) {
                    prompt.media(node, BINARY_ITEM_TOKENS);
                }
            }
            Some("document") => match source_type {
                Some("base64") => {
                    if let Some(node) = source.and_then(|s| s.get("data")) {
                        prompt.media(node, BINARY_ITEM_TOKENS);
                    }
                }
                Some("text") => {}
                Some("content") => {
                    if let Some(Value::Array(inner)) = source.and_then(|s| s.get("content")) {
                        blocks(inner, prompt)?;
                    }
                }
                Some("url" | "file") => {
                    return Err(PluginError::InvalidRequest(
                        "a `document` block by `url` or `file` cannot be sized; send documents inline (base64) so their size bounds the cost".into(),
                    ));
                }
                _ => return Err(unknown_source("document", source_type)),
            },
            Some("container_upload") => {
                return Err(PluginError::InvalidRequest(
                    "a `container_upload` block refers to a file by id, which cannot be sized".into(),
                ));
            }
            Some("tool_result" | "search_result") => {
                if let Some(Value::Array(inner)) = block.get("content") {
                    blocks(inner, prompt)?;
                }
            }
            _ => {}
        }
    }
    Ok(())
}

fn unknown_source(block: &str, source_type: Option<&str>) -> PluginError {
    PluginError::InvalidRequest(match source_type {
        Some(t) => format!("an `{block}` block with source type {} cannot be sized", quoted(t)),
        None => format!("an `{block}` block needs a `source` with a string `type`"),
    })
}

/// Applies the tool rules, adding hidden definitions to `prompt`; what server tools allow.
fn tools(body: &Value, prompt: &mut PromptBound) -> PluginResult<ServerTools> {
    let mut server = ServerTools::default();
    let Some(Value::Array(tools)) = body.get("tools") else {
        return Ok(server);
    };
    if !tools.is_empty() {
        prompt.add(TOOL_USE_SYSTEM_TOKENS);
    }
    for tool in tools {
        let kind = tool.get("type").and_then(Value::as_str);
        let Some(kind) = kind.filter(|k| *k != "custom") else {
            continue;
        };
        prompt.add(TYPED_TOOL_TOKENS);
        let (fee, per_use) = if kind.starts_with("web_search_") {
            (&mut server.web_search, SEARCH_RESULT_TOKENS)
        } else if kind.starts_with("web_fetch_") {
            let most = count(tool.get("max_content_tokens"), "tools[].max_content_tokens", 1, MAX_COUNT)?;
            let Some(most) = most else {
                return Err(PluginError::InvalidRequest(
                    "a `web_fetch` tool needs `max_content_tokens`, so that what it fetches is bounded".into(),
                ));
            };
            (&mut server.web_fetch, most)
        } else if ["bash_", "text_editor_", "computer_", "memory_"].iter().any(|p| kind.starts_with(p)) {
            continue;
        } else {
            return Err(PluginError::InvalidRequest(format!(
                "tool type {} runs on Anthropic's side and its cost cannot be bounded from the request",
                quoted(kind)
            )));
        };
        let Some(uses) = count(tool.get("max_uses"), "tools[].max_uses", 1, MAX_TOOL_USES)? else {
            return Err(PluginError::InvalidRequest(format!(
                "a {} tool needs `max_uses` (1 to {MAX_TOOL_USES}), so that its calls are bounded",
                quoted(kind)
            )));
        };
        *fee = fee.saturating_add(uses);
        server.uses = server.uses.saturating_add(uses);
        server.per_use = server.per_use.max(per_use);
    }
    Ok(server)
}

#[cfg(test)]
mod tests {
    use super::*;
    use xjp_plugin_sdk::testing::assert_refused;
    use xjp_plugin_sdk::{Fee, prompt_tokens};

    const LIMITS: ModelLimits = ModelLimits { default_max_output_tokens: 4096, max_output_tokens: 64_000 };

    fn refused(body: &str, needle: &str) {
        assert_refused(upper_bound(body.as_bytes(), &LIMITS), needle, body);
    }

    fn est(body: &str) -> Usage {
        upper_bound(body.as_bytes(), &LIMITS).unwrap_or_else(|e| panic!("{body:.200}: {e:?}"))
    }

    fn user(content: &str) -> String {
        format!(r#"{{"max_tokens":10,"messages":[{{"role":"user","content":{content}}}]}}"#)
    }

    #[test]
    fn bounds_output_by_max_tokens_within_the_model_ceiling() {
        let u = est(r#"{"model":"claude-sonnet-4-5","max_tokens":1024,"messages":[{"role":"user","content":"Hi"}]}"#);
        assert_eq!(u.output_tokens, 1024);
        assert!(u.input_uncached_tokens >= 2);
        assert_eq!(u.cache_write_5m_tokens + u.cache_write_1h_tokens, 0);
        assert!(u.fees.is_empty());
        assert_eq!(est(r#"{"max_tokens":128000,"messages":[]}"#).output_tokens, 64_000);
        assert_eq!(est(r#"{"messages":[]}"#).output_tokens, 4096);
        let thinking = r#"{"max_tokens":16000,"thinking":{"type":"enabled","budget_tokens":10000},"messages":[]}"#;
        assert_eq!(est(thinking).output_tokens, 16_000);
    }

    #[test]
    fn limits_that_are_not_integers_are_refused() {
        for bad in [r#""1024""#, "1024.0", "1e3", "-1", "2147483648", "false", "{}"] {
            refused(&format!(r#"{{"messages":[],"max_tokens":{bad}}}"#), "`max_tokens` must be a JSON integer");
            refused(
                &format!(r#"{{"messages":[],"max_tokens":100,"thinking":{{"type":"enabled","budget_tokens":{bad}}}}}"#),
                "`thinking.budget_tokens` must be",
            );
        }
        refused(&format!(r#"{{"messages":[],"max_tokens":"{}\u0000"}}"#, "1".repeat(3000)), "not a string");
        refused(r#"{"max_tokens":10,"messages":[],"max_tokens":64000}"#, "`max_tokens` appears twice");
    }

    #[test]
    fn cache_markers_move_the_prompt_to_the_write_bucket() {
        let plain = r#"{"max_tokens":10,"system":[{"type":"text","text":"You are terse."}],"messages":[]}"#;
        let five = r#"{"max_tokens":10,"system":[{"type":"text","text":"You are terse.","cache_control":{"type":"ephemeral"}}],"messages":[]}"#;
        let hour = r#"{"max_tokens":10,"system":[{"type":"text","text":"You are terse.","cache_control":{"type":"ephemeral","ttl":"1h"}}],"messages":[{"role":"user","content":[{"type":"text","text":"q","cache_control":{"type":"ephemeral"}}]}]}"#;
        let u = est(plain);
        assert_eq!((u.cache_write_5m_tokens, u.cache_write_1h_tokens), (0, 0));
        let u = est(five);
        assert_eq!((u.input_uncached_tokens, u.cache_write_1h_tokens), (0, 0));
        assert_eq!(u.cache_write_5m_tokens, prompt_tokens(&u));
        assert!(u.cache_write_5m_tokens > 0);
        let u = est(hour);
        assert_eq!((u.input_uncached_tokens, u.cache_write_5m_tokens), (0, 0));
        assert!(u.cache_write_1h_tokens > 0);
        // A marker word inside text is not a marker.
        let text = r#"{"max_tokens":10,"messages":[{"role":"user","content":"what is cache_control?"}]}"#;
        assert_eq!(est(text).cache_write_5m_tokens, 0);
    }

    #[test]
    fn images_count_per_item_inline_by_url_or_by_file() {
        let text = est(&user(r#"[{"type":"text","text":"what is it?"}]"#)).input_uncached_tokens;
        let b64 = "iVBORw0KGgo".repeat(20_000);
        for source in [
            format!(r#"{{"type":"base64","media_type":"image/png","data":"{b64}"}}"#),
            r#"{"type":"url","url":"https://e.com/cat.png"}"#.to_owned(),
            r#"{"type":"file","file_id":"file_011CNha8iCJcU1wXNR6q4V8w"}"#.to_owned(),
        ] {
            let body =
                user(&format!(r#"[{{"type":"text","text":"what is it?"}},{{"type":"image","source":{source}}}]"#));
            let u = est(&body).input_uncached_tokens;
            assert!(u >= text + BINARY_ITEM_TOKENS && u < text + BINARY_ITEM_TOKENS + 200, "{source:.60}: {u}");
        }
        // Inside a tool result too.
        let body = user(
            r#"[{"type":"tool_result","tool_use_id":"t","content":[{"type":"image","source":{"type":"url","url":"https://e.com/a.png"}}]}]"#,
        );
        assert!(est(&body).input_uncached_tokens >= BINARY_ITEM_TOKENS);
        refused(&user(r#"[{"type":"image","source":{"type":"s3","uri":"s3://b/k"}}]"#), "source type `s3`");
        refused(&user(r#"[{"type":"image"}]"#), "needs a `source`");
    }

    #[test]
    fn documents_inline_count_per_item_by_reference_are_refused() {
        let b64 = "JVBERi0xLjc".repeat(20_000);
        let u = est(&user(&format!(
            r#"[{{"type":"document","source":{{"type":"base64","media_type":"application/pdf","data":"{b64}"}}}}]"#
        )));
        assert!(u.input_uncached_tokens >= BINARY_ITEM_TOKENS && u.input_uncached_tokens < BINARY_ITEM_TOKENS + 200);
        // Plain text documents are text, however they look.
        let letters = "QUFB".repeat(25_000);
        let u = est(&user(&format!(
            r#"[{{"type":"document","source":{{"type":"text","media_type":"text/plain","data":"{letters}"}}}}]"#
        )));
        assert!(u.input_uncached_tokens >= 100_000);
        let u = est(&user(&format!(
            r#"[{{"type":"document","source":{{"type":"content","content":[{{"type":"text","text":"{letters}"}},{{"type":"image","source":{{"type":"url","url":"https://e.com/a.png"}}}}]}}}}]"#
        )));
        assert!(u.input_uncached_tokens >= 100_000 + BINARY_ITEM_TOKENS);
        refused(
            &user(r#"[{"type":"document","source":{"type":"url","url":"https://e.com/a.pdf"}}]"#),
            "inline (base64)",
        );
        refused(&user(r#"[{"type":"document","source":{"type":"file","file_id":"file_1"}}]"#), "inline (base64)");
        refused(&user(r#"[{"type":"container_upload","file_id":"file_1"}]"#), "`container_upload`");
        // Base64-looking text in a tool's input stays text.
        let u = est(&format!(
            r#"{{"max_tokens":10,"messages":[{{"role":"assistant","content":[{{"type":"tool_use","id":"t","name":"f","input":{{"type":"base64","data":"{letters}"}}}}]}}]}}"#
        ));
        assert!(u.input_uncached_tokens >= 100_000);
    }

    #[test]
    fn web_search_needs_max_uses_and_reserves_fees_and_the_tool_loop() {
        let prompt = |tools: &str| {
            est(&format!(r#"{{"max_tokens":100,"messages":[{{"role":"user","content":"q"}}],"tools":{tools}}}"#))
        };
        let none = est(r#"{"max_tokens":100,"messages":[{"role":"user","content":"q"}]}"#);
        let custom = prompt(r#"[{"name":"f","input_schema":{"type":"object"}}]"#);
        assert!(custom.input_uncached_tokens >= none.input_uncached_tokens + TOOL_USE_SYSTEM_TOKENS);
        let one = prompt(r#"[{"type":"web_search_20250305","name":"web_search","max_uses":1}]"#);
        assert_eq!(one.fees, vec![Fee { name: WEB_SEARCH_FEE.into(), count: 1 }]);
        assert_eq!(one.output_tokens, 100);
        // Two iterations read the prompt P twice; one search adds its results and output once.
        let p = none.input_uncached_tokens + TOOL_USE_SYSTEM_TOKENS + TYPED_TOOL_TOKENS;
        assert!(one.input_uncached_tokens >= 2 * p + SEARCH_RESULT_TOKENS + 100);
        assert!(one.input_uncached_tokens < 2 * (p + 200) + SEARCH_RESULT_TOKENS + 100);
        let three = prompt(
            r#"[{"type":"web_search_20250305","name":"web_search","max_uses":2},{"type":"web_fetch_20250910","name":"web_fetch","max_uses":1,"max_content_tokens":5000}]"#,
        );
        assert_eq!(
            three.fees,
            vec![Fee { name: WEB_SEARCH_FEE.into(), count: 2 }, Fee { name: WEB_FETCH_FEE.into(), count: 1 }]
        );
        assert!(three.input_uncached_tokens >= 4 * p + 6 * (SEARCH_RESULT_TOKENS + 100));
        refused(&prompt_body(r#"[{"type":"web_search_20250305","name":"web_search"}]"#), "needs `max_uses`");
        refused(
            &prompt_body(r#"[{"type":"web_search_20250305","name":"web_search","max_uses":"5"}]"#),
            "`tools[].max_uses` must be",
        );
        refused(&prompt_body(r#"[{"type":"web_search_20250305","name":"web_search","max_uses":2.5}]"#), "fraction");
        refused(&prompt_body(r#"[{"type":"web_search_20250305","name":"web_search","max_uses":-1}]"#), "not -1");
        refused(
            &prompt_body(r#"[{"type":"web_search_20250305","name":"web_search","max_uses":101}]"#),
            "from 1 to 100",
        );
        refused(
            &prompt_body(r#"[{"type":"web_fetch_20250910","name":"web_fetch","max_uses":1}]"#),
            "`max_content_tokens`",
        );
        refused(
            &prompt_body(r#"[{"type":"web_fetch_20250910","name":"web_fetch","max_content_tokens":9}]"#),
            "needs `max_uses`",
        );
    }

    fn prompt_body(tools: &str) -> String {
        format!(r#"{{"max_tokens":100,"messages":[],"tools":{tools}}}"#)
    }

    #[test]
    fn client_tools_add_their_definitions_and_other_server_tools_are_refused() {
        let bare = est(&prompt_body("[]")).input_uncached_tokens;
        let computer = est(&prompt_body(
            r#"[{"type":"computer_20250124","name":"computer","display_width_px":1024,"display_height_px":768},{"type":"bash_20250124","name":"bash"}]"#,
        ));
        assert!(computer.input_uncached_tokens >= bare + TOOL_USE_SYSTEM_TOKENS + 2 * TYPED_TOOL_TOKENS);
        assert!(computer.fees.is_empty());
        refused(
            &prompt_body(r#"[{"type":"code_execution_20250825","name":"code_execution"}]"#),
            "`code_execution_20250825`",
        );
        refused(&prompt_body(r#"[{"type":"mcp_toolset","mcp_server_name":"x"}]"#), "`mcp_toolset`");
        let hostile = serde_json::json!([{"type": format!("{}\u{0}", "z".repeat(3000))}]).to_string();
        refused(&prompt_body(&hostile), "runs on Anthropic's side");
        refused(r#"{"max_tokens":10,"messages":[],"mcp_servers":[{"type":"url","url":"https://m"}]}"#, "`mcp_servers`");
        refused(r#"{"max_tokens":10,"messages":[],"container":"container_1"}"#, "`container`");
    }

    #[test]
    fn rejects_bodies_that_are_not_objects() {
        assert!(matches!(upper_bound(b"not json", &LIMITS), Err(PluginError::InvalidRequest(_))));
        assert!(matches!(upper_bound(b"[]", &LIMITS), Err(PluginError::InvalidRequest(_))));
        // The host's self-test body.
        assert!(upper_bound(br#"{"model":"self-test","max_tokens":16}"#, &LIMITS).is_ok());
    }
}
