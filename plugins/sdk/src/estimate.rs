//! Upper-bound usage estimates from a request body, for the balance reservation.
//!
//! The host prices the estimate and holds that amount before it calls the provider, and
//! the hold is a hard cap: whatever a request makes the provider bill has to fit in it.
//! So every request field that raises cost is either **bounded** here by a rule, or the
//! request is **refused** with [`PluginError::InvalidRequest`] (a 400 in the client's
//! format, with the message). Each plugin's estimate module lists its provider's fields;
//! the rules they share:
//!
//! | What | Rule |
//! | --- | --- |
//! | the body | a JSON object read with [`parse_request`]: a key twice in one object is refused, since providers differ on which of the two they keep |
//! | text: every string, key and number | its UTF-8 bytes (a byte-level BPE token covers at least one byte), plus [`PER_NODE_TOKENS`] per object for role markers and separators ([`prompt_upper_bound`]) |
//! | media a plugin finds at a documented position (a content part, a block, a `Part`) | its allowance instead of its bytes ([`PromptBound::media`]): [`BINARY_ITEM_TOKENS`] per image unless the provider needs more; base64 is never recognised by its look, so arbitrary JSON (tool arguments, schemas) cannot pass text off as an image |
//! | an image by reference (URL, file id) | the same allowance as inline: what an image costs depends on its size in pixels, which the provider caps, not on how it is sent |
//! | audio, video or a document by reference | refused: nothing in the request bounds its length (an hour of video is ~1M tokens) |
//! | audio, video or a document inline (base64) | [`BINARY_ITEM_TOKENS`] per item. **Not a bound**: a long recording or a many-page PDF costs more, and its byte size does not bound its tokens either (a blank PDF page is a few bytes, a page of tokens); bounding these needs the model's context window, which [`ModelLimits`] does not carry |
//! | a count or limit the estimate reads (`n`, a candidate count, an output maximum, `max_uses`, a thinking budget) | a JSON integer within the field's range, [`MAX_COUNT`] at most ([`count`]); a string, a fraction or exponent, a negative or larger number is refused naming the field (protobuf JSON would honour `"8"`) |
//! | the output maximum | the largest requested (they are validated as above), else the model default, never above the model ceiling ([`output_upper_bound`]); several outputs (choices, candidates) multiply it |
//! | a server-side tool billed per call | its fee ([`add_fee`]) counted at the most calls the request allows, plus [`SEARCH_RESULT_TOKENS`] of prompt per search where the results are billed as prompt; a tool with no bound on its calls or results is refused |
//! | a key in two spellings (`candidateCount` and `candidate_count`) | refused, for every field the estimate reads |
//!
//! Prompt tokens are all priced as uncached input, the most expensive way they can be
//! billed apart from cache writes, which the caller adds when the request asks for them.

use crate::json::{Value, number_text};
use crate::{Fee, ModelLimits, PluginError, Usage, empty_usage};

/// Tokens allowed per image, and per inline audio, video or document item.
///
/// Images: OpenAI's high-detail tiles come to at most 1,445 (GPT-4o: 85 + 8 × 170) and
/// patches to at most 3,779 (1,536 × 2.46); Anthropic's are about 1,600; Gemini's 258 per
/// 768 px tile on 2.x and 2,240 at Gemini 3's ultra-high resolution. A plugin whose
/// models need more (GPT-4o mini) uses its own allowance.
pub const BINARY_ITEM_TOKENS: u64 = 8_192;
/// Tokens added per object (message, part) for role markers and separators.
pub const PER_NODE_TOKENS: u64 = 4;
/// The largest count or token limit a request may set: `i32::MAX`, the range of the
/// protobuf `int32` fields Gemini declares them as. Anything larger is refused.
pub const MAX_COUNT: u64 = i32::MAX as u64;
/// Prompt tokens allowed per web search whose results the provider bills as prompt
/// tokens (Anthropic's search results, Gemini's grounding `toolUsePromptTokenCount`,
/// OpenAI's and OpenRouter's search context). No provider documents a maximum; observed
/// searches add a few hundred to ~8,000 tokens, so this is four times the largest seen.
pub const SEARCH_RESULT_TOKENS: u64 = 32_768;

/// Parses a request body for an estimate: a JSON object with no key twice in one
/// object, else [`PluginError::InvalidRequest`].
pub fn parse_request(request: &[u8]) -> Result<Value, PluginError> {
    let body = crate::json::parse_unique(request).map_err(|e| match e {
        PluginError::Malformed(m) => PluginError::InvalidRequest(m),
        other => other,
    })?;
    if !body.is_object() {
        return Err(PluginError::InvalidRequest("request body must be a JSON object".into()));
    }
    Ok(body)
}

/// Prompt-token upper bound of a JSON value read as text: the bytes of every string,
/// key and number, plus [`PER_NODE_TOKENS`] per object.
pub fn prompt_upper_bound(v: &Value) -> u64 {
    match v {
        Value::String(s) => s.len() as u64,
        Value::Array(items) => items.iter().map(prompt_upper_bound).fold(0u64, u64::saturating_add),
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| (k.len() as u64).saturating_add(prompt_upper_bound(v)))
            .fold(PER_NODE_TOKENS, u64::saturating_add),
        Value::Number(n) => number_text(n).len() as u64,
        Value::Bool(_) | Value::Null => 1,
    }
}

/// The prompt bound of a request: its text ([`prompt_upper_bound`]), with the media the
/// plugin finds counted at their allowances instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PromptBound(u64);

impl PromptBound {
    /// The whole request read as text.
    pub fn of(body: &Value) -> Self {
        PromptBound(prompt_upper_bound(body))
    }

    /// Counts `node`, a value inside the request this bound was made of, as `tokens`
    /// instead of its text (an image's base64 or URL as the image's allowance).
    pub fn media(&mut self, node: &Value, tokens: u64) {
        self.0 = self.0.saturating_sub(prompt_upper_bound(node)).saturating_add(tokens);
    }

    /// Adds tokens the request text does not carry (hidden tool prompts, search results).
    pub fn add(&mut self, tokens: u64) {
        self.0 = self.0.saturating_add(tokens);
    }

    /// The bound.
    pub fn tokens(self) -> u64 {
        self.0
    }
}

/// A count or limit the estimate reads, as the provider would honour it: absent or
/// `null` is `None`, a JSON integer in `min..=max` is itself, and anything else is
/// refused with a message naming `field` (and never repeating a client's string).
pub fn count(value: Option<&Value>, field: &str, min: u64, max: u64) -> Result<Option<u64>, PluginError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(v) => match v.as_u64() {
            Some(n) if (min..=max).contains(&n) => Ok(Some(n)),
            _ => Err(PluginError::InvalidRequest(format!(
                "`{field}` must be a JSON integer from {min} to {max}, not {}",
                describe(v)
            ))),
        },
    }
}

/// What a JSON value is, for an error message (numbers as written, strings not).
pub fn describe(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(_) => "a boolean".into(),
        Value::String(_) => "a string".into(),
        Value::Array(_) => "an array".into(),
        Value::Object(_) => "an object".into(),
        Value::Number(n) if n.is_f64() => "a number with a fraction or exponent".into(),
        Value::Number(n) => number_text(n),
    }
}

/// The output-token bound: the request's own maximum if it sets one, else the
/// model default, never above the model ceiling.
pub fn output_upper_bound(requested_max: Option<u64>, limits: &ModelLimits) -> u64 {
    requested_max.unwrap_or(limits.default_max_output_tokens).min(limits.max_output_tokens)
}

/// The largest of the output maxima at `paths` (each validated with [`count`]), if the
/// request sets any.
pub fn requested_max(body: &Value, paths: &[&[&str]]) -> Result<Option<u64>, PluginError> {
    let mut max = None;
    for path in paths {
        let field = path.join(".");
        if let Some(n) = count(crate::json::at(body, path), &field, 0, MAX_COUNT)? {
            max = max.max(Some(n));
        }
    }
    Ok(max)
}

/// Adds `count` units of fee `name` to `usage` (summing with a fee of that name already
/// there); the name must be the one the plugin's usage extraction reports, so that the
/// host prices the estimate with the same price entry.
pub fn add_fee(usage: &mut Usage, name: &str, count: u64) {
    if count == 0 {
        return;
    }
    match usage.fees.iter_mut().find(|f| f.name == name) {
        Some(fee) => fee.count = fee.count.saturating_add(count),
        None => usage.fees.push(Fee { name: name.to_owned(), count }),
    }
}

/// A conservative estimate of a request with nothing provider-specific in it: all
/// prompt text priced as uncached input and the largest output maximum at
/// `max_output_paths` (validated, within the model limits). Plugins start from the parts
/// ([`parse_request`], [`PromptBound`], [`requested_max`]) to add their own rules.
pub fn upper_bound(request: &[u8], max_output_paths: &[&[&str]], limits: &ModelLimits) -> Result<Usage, PluginError> {
    let body = parse_request(request)?;
    let mut usage = empty_usage();
    usage.output_tokens = output_upper_bound(requested_max(&body, max_output_paths)?, limits);
    usage.input_uncached_tokens = PromptBound::of(&body).tokens();
    Ok(usage)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: ModelLimits = ModelLimits { default_max_output_tokens: 4096, max_output_tokens: 8192 };

    #[test]
    fn bounds_text_by_bytes_and_the_output_by_the_largest_maximum() {
        let u = upper_bound(
            br#"{"model":"m","max_tokens":100000,"messages":[{"role":"user","content":"hello world"}]}"#,
            &[&["max_tokens"]],
            &LIMITS,
        )
        .unwrap();
        assert!(u.input_uncached_tokens >= 11);
        assert_eq!(u.output_tokens, 8192);
        let u = upper_bound(br#"{"messages":[]}"#, &[&["max_tokens"]], &LIMITS).unwrap();
        assert_eq!(u.output_tokens, 4096);
        let both = br#"{"a":{"max":10},"max_tokens":20}"#;
        assert_eq!(upper_bound(both, &[&["a", "max"], &["max_tokens"]], &LIMITS).unwrap().output_tokens, 20);
        assert!(matches!(upper_bound(b"[1]", &[], &LIMITS), Err(PluginError::InvalidRequest(_))));
        assert!(matches!(upper_bound(b"{", &[], &LIMITS), Err(PluginError::InvalidRequest(_))));
    }

    #[test]
    fn base64_is_text_unless_a_plugin_says_it_is_media() {
        // A long run of base64 letters under a key called `data` is still text: it may be
        // a tool argument the model reads token by token.
        let b64 = "QUFB".repeat(25_000);
        let body: Value = serde_json::from_str(&format!(r#"{{"input":{{"data":"{b64}"}}}}"#)).unwrap();
        let mut prompt = PromptBound::of(&body);
        assert!(prompt.tokens() > 100_000);
        prompt.media(&body["input"]["data"], BINARY_ITEM_TOKENS);
        assert!(prompt.tokens() > BINARY_ITEM_TOKENS && prompt.tokens() < BINARY_ITEM_TOKENS + 40);
        prompt.add(10);
        assert!(prompt.tokens() > BINARY_ITEM_TOKENS + 10);
    }

    #[test]
    fn counts_are_integers_in_range_and_everything_else_is_refused() {
        let v = |s: &str| serde_json::from_str::<Value>(s).unwrap();
        assert_eq!(count(None, "n", 1, 8), Ok(None));
        assert_eq!(count(Some(&v("null")), "n", 1, 8), Ok(None));
        assert_eq!(count(Some(&v("8")), "n", 1, 8), Ok(Some(8)));
        let long = format!("\"{}\\u0000\"", "9".repeat(3000));
        for (bad, what) in [
            ("\"8\"", "not a string"),
            (long.as_str(), "not a string"),
            ("8.0", "fraction or exponent"),
            ("8e0", "fraction or exponent"),
            ("-1", "not -1"),
            ("9", "not 9"),
            ("0", "not 0"),
            ("1e300", "fraction or exponent"),
            ("true", "boolean"),
            ("[8]", "array"),
            ("{\"n\":8}", "object"),
            ("18446744073709551616", "fraction or exponent"),
        ] {
            let Err(PluginError::InvalidRequest(m)) = count(Some(&v(bad)), "n", 1, 8) else { panic!("{bad} accepted") };
            assert!(m.starts_with("`n` must be a JSON integer from 1 to 8") && m.contains(what), "{m}");
            assert!(m.len() < 100, "{m}");
        }
        let body = v(r#"{"max_tokens":"100"}"#);
        assert!(
            matches!(requested_max(&body, &[&["max_tokens"]]), Err(PluginError::InvalidRequest(m)) if m.contains("`max_tokens`"))
        );
        let body = v(r#"{"max_tokens":3000000000}"#);
        assert!(requested_max(&body, &[&["max_tokens"]]).is_err());
    }

    #[test]
    fn a_number_counts_the_bytes_serde_json_prints_for_it() {
        for text in ["7", "-12", "0.5", "1e30", "1e-7", "2.5e-7", "100.0", "1.7976931348623157e308", "-0"] {
            let v = serde_json::from_str::<Value>(text).unwrap();
            assert_eq!(prompt_upper_bound(&v), v.to_string().len() as u64, "{text}");
        }
        assert_eq!(prompt_upper_bound(&serde_json::json!(1e30)), "1e+30".len() as u64);
    }

    #[test]
    fn repeated_keys_are_refused() {
        let r = parse_request(br#"{"n":1,"messages":[],"n":100}"#);
        assert!(matches!(r, Err(PluginError::InvalidRequest(m)) if m.contains("`n` appears twice")));
    }

    #[test]
    fn fees_of_one_name_add_up() {
        let mut u = empty_usage();
        add_fee(&mut u, "web_search", 2);
        add_fee(&mut u, "web_fetch", 0);
        add_fee(&mut u, "web_search", 3);
        assert_eq!(u.fees, vec![Fee { name: "web_search".into(), count: 5 }]);
    }
}
