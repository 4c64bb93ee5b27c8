//! What crosses the gateway between a client and a provider, by allow-list: the request
//! headers and query parameters a client may send to the provider, and the provider's
//! response headers the client gets back. Anything not on a list is dropped.
//!
//! A provider's lists are its format's defaults below unless it sets `forward_headers`,
//! `forward_query` or `forward_response_headers`, each of which *replaces* its default
//! (`[]` forwards nothing). An entry is `name` (any value) or `name=value` (only that value;
//! repeat the entry for several). A header restricted to values is read as a
//! comma-separated list and each item is kept or dropped on its own (`anthropic-beta: a,b`).
//!
//! The gateway's own headers come after the client's: the content type, `accept-encoding:
//! identity`, the request id and the provider credential replace whatever the client sent;
//! the provider's `default_headers` fill in what the client did not send (so a client can
//! replace one only when its name is on `forward_headers`). No list can hold a credential
//! name, a name the gateway sets, a hop-by-hop header, or a parameter that removes usage
//! from the answer: such entries are refused by validation and never enter a list. Query
//! names are compared percent-decoded, so no spelling of `key` reaches a provider.

use super::ProviderConfig;
use crate::plugins::ApiFormat;
use std::collections::{BTreeMap, BTreeSet};

/// Request headers a client may send to a provider of `api` (when it sets no `forward_headers`).
///
/// - OpenAI chat: none. `openai-organization` / `openai-project` pick which of the operator's
///   organisations and projects is billed; `openai-beta` is for the Assistants and Realtime
///   APIs, not chat completions; the SDKs' `x-stainless-*` and `user-agent` only describe the
///   client. (OpenRouter's attribution headers `http-referer` and `x-title` can be allowed
///   per provider.)
/// - Anthropic: `anthropic-version` 2023-06-01 only (the version the anthropic plugin and
///   its recorded fixtures read; allow a newer one per provider once the plugin is checked
///   against it; the provider's `default_headers` set it when the client does not), and
///   `anthropic-beta` limited to betas that change what the model does but are billed in
///   the ordinary token buckets the plugin prices: interleaved thinking (thinking is output tokens),
///   fine-grained tool streaming (the same stream events, unbuffered) and token-efficient
///   tools (fewer output tokens). Not allowed by default, because they change the price or
///   bill what the plugin does not see: `context-1m-*` (long-context rates: allow it only for
///   routes whose price has a `long_context` tier), fast mode (a premium rate), code
///   execution and skills (container hours), the files API and MCP connectors (the
///   operator's files, outbound calls).
/// - Gemini: none. `x-goog-fieldmask` selects response fields (and can leave
///   `usageMetadata` out), `x-goog-user-project` bills another Google project,
///   `x-goog-api-client` / `x-server-timeout` / `x-http-method-override` are not needed.
pub fn default_request_headers(api: ApiFormat) -> &'static [&'static str] {
    match api {
        ApiFormat::OpenaiChat | ApiFormat::GeminiGenerate => &[],
        ApiFormat::AnthropicMessages => &[
            "anthropic-version=2023-06-01",
            "anthropic-beta=interleaved-thinking-2025-05-14",
            "anthropic-beta=fine-grained-tool-streaming-2025-05-14",
            "anthropic-beta=token-efficient-tools-2025-02-19",
        ],
    }
}

/// Query parameters a client may send to a provider of `api` (when it sets no `forward_query`).
///
/// Gemini: `alt=sse` only (server-sent events instead of a JSON array; both are read by the
/// plugin). Not `alt=proto` (a body the plugin cannot read), not the response field
/// selection `fields` / `$fields`, not `key` / `$key`, `quotaUser`, `prettyPrint` or any
/// other Google system parameter. OpenAI and Anthropic take no query parameters.
pub fn default_query(api: ApiFormat) -> &'static [&'static str] {
    match api {
        ApiFormat::GeminiGenerate => &["alt=sse"],
        ApiFormat::OpenaiChat | ApiFormat::AnthropicMessages => &[],
    }
}

/// Response headers a client gets back from any provider (when it sets no
/// `forward_response_headers`): `content-type` (SDKs read it to tell a stream from a body)
/// and `retry-after` (on 429 and 503, so clients back off). The gateway adds its own
/// `x-request-id`. Dropped: the provider's request ids, organisation and project ids
/// (`openai-organization`, `openai-project`), rate-limit headers (`x-ratelimit-*`,
/// `anthropic-ratelimit-*`) that describe the operator's account, processing times,
/// `server`, `via`, `cf-*`, `set-cookie`, and everything else.
pub const DEFAULT_RESPONSE_HEADERS: &[&str] = &["content-type", "retry-after"];

/// Which list an entry belongs to (each has its own name rules and refused names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListKind {
    /// `forward_headers`
    RequestHeaders,
    /// `forward_query`
    Query,
    /// `forward_response_headers`
    ResponseHeaders,
}

impl ListKind {
    /// The config key.
    pub fn key(self) -> &'static str {
        match self {
            ListKind::RequestHeaders => "forward_headers",
            ListKind::Query => "forward_query",
            ListKind::ResponseHeaders => "forward_response_headers",
        }
    }

    /// Why `name` (lowercased) may not be on this list, if it may not.
    fn refusal(self, name: &str) -> Option<&'static str> {
        const CREDENTIAL: &str = "a credential";
        const GATEWAY: &str = "the gateway's own";
        const HOP: &str = "a hop-by-hop header";
        const USAGE: &str = "lets a client remove usage from the response";
        match self {
            ListKind::RequestHeaders => match name {
                "authorization" | "proxy-authorization" | "x-api-key" | "x-goog-api-key" | "cookie" => Some(CREDENTIAL),
                "host" | "content-type" | "content-length" | "accept-encoding" | "x-request-id" | "idempotency-key" => {
                    Some(GATEWAY)
                }
                "connection" | "keep-alive" | "proxy-connection" | "te" | "trailer" | "transfer-encoding"
                | "upgrade" => Some(HOP),
                "x-goog-fieldmask" => Some(USAGE),
                _ => None,
            },
            ListKind::Query => match name {
                "key" | "$key" | "access_token" | "$access_token" => Some(CREDENTIAL),
                "fields" | "$fields" => Some(USAGE),
                _ => None,
            },
            ListKind::ResponseHeaders => match name {
                "x-request-id" => Some(GATEWAY),
                "content-length" | "content-encoding" => Some("describes the provider's framing, not the client's"),
                "connection" | "keep-alive" | "proxy-connection" | "te" | "trailer" | "transfer-encoding"
                | "upgrade" => Some(HOP),
                "set-cookie" => Some("a cookie for the provider's site"),
                _ => None,
            },
        }
    }

    fn name_ok(self, name: &str) -> bool {
        let tchar = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || b"!#$%&'*+-.^_`|~".contains(&b);
        let query_char = |b: u8| b.is_ascii_alphanumeric() || b"-._~$".contains(&b);
        !name.is_empty() && name.bytes().all(if self == ListKind::Query { query_char } else { tchar })
    }
}

/// Which values of a name pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Values {
    /// Any value.
    Any,
    /// Only these (for a header, each comma-separated item on its own).
    Only(BTreeSet<String>),
}

impl Values {
    /// Whether `value` (one query value, or one item of a header's list) passes.
    pub fn admits(&self, value: &str) -> bool {
        match self {
            Values::Any => true,
            Values::Only(set) => set.contains(value),
        }
    }
}

/// One allow-list: names (header names lowercase, query names as they read once
/// percent-decoded) and the values each may carry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowList(BTreeMap<String, Values>);

impl AllowList {
    /// The values `name` may carry, if it is on the list.
    pub fn get(&self, name: &str) -> Option<&Values> {
        self.0.get(name)
    }

    /// The list of `entries`, and a message for each entry left out (a bad name or value,
    /// a refused name, a name both open and restricted).
    pub fn parse(kind: ListKind, entries: &[impl AsRef<str>]) -> (AllowList, Vec<String>) {
        let mut map: BTreeMap<String, Values> = BTreeMap::new();
        let mut errors = Vec::new();
        for entry in entries {
            let entry = entry.as_ref();
            let (name, value) = match entry.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (entry, None),
            };
            let problem = if !kind.name_ok(name) {
                Some(match kind {
                    ListKind::Query => "not a query parameter name (letters, digits, `-._~$`)".to_string(),
                    _ => "not a lowercase header name (an HTTP token)".to_string(),
                })
            } else if let Some(reason) = kind.refusal(&name.to_ascii_lowercase()) {
                Some(format!("`{name}` is never forwarded ({reason})"))
            } else if value.is_some() && kind == ListKind::ResponseHeaders {
                Some("takes header names only".to_string())
            } else if value.is_some_and(|v| {
                v.is_empty() || !v.bytes().all(|b| b.is_ascii_graphic() && (kind == ListKind::Query || b != b','))
            }) {
                Some("the value must be visible ASCII (and, for a header, one list item: no comma)".to_string())
            } else {
                None
            };
            let problem = problem.or_else(|| match (map.get_mut(name), value) {
                (None, None) => {
                    map.insert(name.to_string(), Values::Any);
                    None
                }
                (None, Some(v)) => {
                    map.insert(name.to_string(), Values::Only(BTreeSet::from([v.to_string()])));
                    None
                }
                (Some(Values::Only(set)), Some(v)) => {
                    set.insert(v.to_string());
                    None
                }
                (Some(Values::Any), None) => None,
                (Some(_), _) => Some(format!("`{name}` is listed both with and without values")),
            });
            if let Some(message) = problem {
                errors.push(format!("{}: `{entry}`: {message}", kind.key()));
            }
        }
        (AllowList(map), errors)
    }
}

/// A provider's three lists.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Forwarding {
    pub request_headers: AllowList,
    pub query: AllowList,
    pub response_headers: AllowList,
}

impl Forwarding {
    /// The lists of a provider speaking `api` with these overrides (`None`: the default);
    /// the messages of every entry left out.
    pub fn new(
        api: ApiFormat,
        headers: Option<&[String]>,
        query: Option<&[String]>,
        response_headers: Option<&[String]>,
    ) -> (Forwarding, Vec<String>) {
        let mut errors = Vec::new();
        let mut list = |kind, configured: Option<&[String]>, default: &[&str]| {
            let (list, mut e) = match configured {
                Some(entries) => AllowList::parse(kind, entries),
                None => AllowList::parse(kind, default),
            };
            errors.append(&mut e);
            list
        };
        let forwarding = Forwarding {
            request_headers: list(ListKind::RequestHeaders, headers, default_request_headers(api)),
            query: list(ListKind::Query, query, default_query(api)),
            response_headers: list(ListKind::ResponseHeaders, response_headers, DEFAULT_RESPONSE_HEADERS),
        };
        (forwarding, errors)
    }
}

impl ProviderConfig {
    /// This provider's lists (its overrides or `api`'s defaults) and the messages of every
    /// entry left out.
    pub fn forwarding(&self, api: ApiFormat) -> (Forwarding, Vec<String>) {
        Forwarding::new(
            api,
            self.forward_headers.as_deref(),
            self.forward_query.as_deref(),
            self.forward_response_headers.as_deref(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        for api in ApiFormat::ALL {
            let (f, errors) = Forwarding::new(api, None, None, None);
            assert!(errors.is_empty(), "{api}: {errors:?}");
            assert!(f.response_headers.get("content-type").is_some());
            assert!(f.request_headers.get("openai-organization").is_none());
        }
        let (f, _) = Forwarding::new(ApiFormat::AnthropicMessages, None, None, None);
        let beta = f.request_headers.get("anthropic-beta").unwrap();
        assert!(beta.admits("interleaved-thinking-2025-05-14") && !beta.admits("context-1m-2025-08-07"));
        let (f, _) = Forwarding::new(ApiFormat::GeminiGenerate, None, None, None);
        assert!(f.query.get("alt").unwrap().admits("sse") && !f.query.get("alt").unwrap().admits("proto"));
    }

    #[test]
    fn bad_entries_are_refused_by_name() {
        let entries =
            ["X-Custom", "bad name", "authorization", "cookie", "x-goog-fieldmask", "ok", "ok=1", "beta=a,b", "beta="];
        let (list, errors) = AllowList::parse(ListKind::RequestHeaders, &entries);
        let text = errors.join("\n");
        for bad in ["`X-Custom`", "`bad name`", "`authorization`", "`cookie`", "`x-goog-fieldmask`", "`ok=1`"] {
            assert!(text.contains(bad), "{bad} not refused: {text}");
        }
        assert!(text.contains("`beta=a,b`") && text.contains("`beta=`"), "{text}");
        assert_eq!(list.get("ok"), Some(&Values::Any));
        assert_eq!(list.get("authorization"), None);
        let (list, errors) = AllowList::parse(ListKind::Query, &["key", "KEY", "$Key", "fields", "a&b", "f=a,b"]);
        assert_eq!(errors.len(), 5, "{errors:?}");
        assert!(list.get("f").unwrap().admits("a,b"));
        let (_, errors) = AllowList::parse(ListKind::ResponseHeaders, &["content-length", "set-cookie", "x=1", "ok"]);
        assert_eq!(errors.len(), 3, "{errors:?}");
    }
}
