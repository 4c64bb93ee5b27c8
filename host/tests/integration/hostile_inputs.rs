//! Hostile inputs (issue 11): for a bounded time, random and malformed requests at every
//! endpoint of a real gateway — bodies with a field of the wrong type or size, broken
//! JSON, odd model names, credentials and request ids, percent-encodings and `%00` in
//! query strings, clients that leave mid-answer — 8 in flight. Afterwards: nothing
//! panicked, every answer was 2xx or a 4xx in the client's error format (5xx only where the
//! upstream is documented unreachable), the server still answers, the ledger still
//! records, and the books balance.
//!
//! The storm is seeded: `XJP_FUZZ_SEED=<n>` replays a sequence of requests (the order
//! they finish in still varies), `XJP_FUZZ_SECS=<n>` lengthens it (default 15 s).

use crate::common;

use bytes::Bytes;
use common::harness::{ADMIN_TOKEN, TestGateway};
use common::money::{CHAT, assert_books_balance};
use common::raw_http;
use common::scenarios::{fixture, mock};
use http_body_util::{BodyExt, Full};
use hyper::header::{HeaderName, HeaderValue};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// Declares [`Kind`], each kind once, and a constant per group of kinds.
macro_rules! kinds {
    ($($(#[$doc:meta])* $group:ident: [$($kind:ident),* $(,)?];)*) => {
        /// What the generator did to a request. Every kind must come out of the generator
        /// (`the_generator_makes_every_kind`), so the storm cannot fade into valid requests.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        enum Kind {
            /// Nothing: a request as a client library would send it.
            Valid,
            $($($kind,)*)*
        }
        $($(#[$doc])* const $group: &[Kind] = &[$(Kind::$kind),*];)*
        /// Every group.
        const GROUPS: &[&[Kind]] = &[$($group),*];
    };
}

kinds! {
    /// One JSON value replaced (a field of the body, or a new top-level key).
    VALUE_KINDS: [StringForNumber, NumberForString, Float, Negative, Huge, Null, Array, Object, Bool,
        NulAndControl, LongString, Nested200, Nested10k, InvalidUtf8, RawControl];
    /// The body as a whole.
    BODY_KINDS: [DuplicateKeys, Truncated, EmptyBody, NonJson, TopLevelArray, TopLevelScalar, Oversized];
    /// Model names (body, Gemini path, quote).
    MODEL_KINDS: [ModelEmpty, ModelLong, ModelNul, ModelNewline, ModelUnicode, ModelDotDot, ModelUnknown,
        ModelMisrouted];
    /// Credentials (tenant key or admin token).
    AUTH_KINDS: [AuthMissing, AuthNoScheme, AuthSpaces, AuthLong, AuthNonAscii, AuthOtherScheme, AuthConflict,
        AuthWrong];
    /// Request ids and other headers.
    HEADER_KINDS: [IdReused, IdBilled, IdLong, IdControl, IdNonAscii, HeaderLong, HeaderControl, ContentType];
    /// Query strings.
    QUERY_KINDS: [QueryPercent, QueryDupKey, QueryNul, QueryLong, QueryOddParam];
    /// The client hangs up.
    LEAVE_KINDS: [LeaveAfterFirstChunk, LeaveBeforeAnswer];
    /// Paths and methods (made by the stray target itself rather than by a mutation).
    PATH_KINDS: [StrayPath, WrongMethod];
}

use Kind::*;

/// Which endpoint family a request is aimed at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Target {
    Chat,
    Messages,
    Gemini,
    Models,
    SelfService,
    Quote,
    AdminRead,
    AdminWrite,
    Ops,
    Stray,
}

const TARGETS: &[(Target, u32)] = &[
    (Target::Chat, 18),
    (Target::Messages, 14),
    (Target::Gemini, 14),
    (Target::Models, 3),
    (Target::SelfService, 8),
    (Target::Quote, 8),
    (Target::AdminRead, 10),
    (Target::AdminWrite, 10),
    (Target::Ops, 6),
    (Target::Stray, 5),
];

/// When the client hangs up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Leave {
    Never,
    AfterFirstChunk,
    /// Drops the request if no answer head came within this many milliseconds.
    BeforeAnswer(u64),
}

/// What the generator knows of the gateway under test.
#[derive(Debug, Clone)]
struct World {
    tenant: Uuid,
    key: String,
    /// A second tenant and key that admin requests may top up, adjust and revoke.
    spare_tenant: Uuid,
    spare_key: String,
    spare_key_id: Uuid,
    /// A tenant that never has a transaction (its reports are empty).
    idle_tenant: Uuid,
    /// Recorded provider answers for the quote endpoint: (model, body, stream).
    answers: Vec<(&'static str, String, bool)>,
}

/// Recorded provider answers for the quote endpoint.
fn recorded_answers() -> Vec<(&'static str, String, bool)> {
    let read = |rel: &str| std::fs::read_to_string(fixture(rel)).unwrap();
    vec![
        ("gpt-4o-mini", read("openai/chat_basic.json"), false),
        ("gpt-4o-mini", read("openai/stream_usage.sse"), true),
        ("claude-sonnet-4-5", read("anthropic/messages_basic.json"), false),
        ("claude-sonnet-4-5", read("anthropic/messages_stream.sse"), true),
        ("gemini-2.5-flash", read("gemini/generate_basic.json"), false),
        ("or-sonnet", read("openrouter/chat_basic.json"), false),
    ]
}

/// The request id billed before the storm, which the storm then reuses.
const BILLED_ID: &str = "fuzz-billed";
/// Request ids the storm reuses among its own requests.
const REUSED_IDS: &[&str] = &["fuzz-reused-1", "fuzz-reused-2", "fuzz-reused-3"];
/// Where a hostile JSON value goes in a serialized body (then spliced in as raw bytes).
const HOLE: &str = "FUZZ_HOLE_";

/// One request of the storm.
#[derive(Debug, Clone)]
struct Case {
    n: u64,
    target: Target,
    method: String,
    /// Path and query, as sent (possibly not valid in a URI).
    uri: Vec<u8>,
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
    kinds: BTreeSet<Kind>,
    leave: Leave,
    /// The model is routed to a provider nobody listens for: 502 is the documented answer.
    allow_502: bool,
}

/// Where the request's model goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ModelAt {
    Nowhere,
    Body,
    /// `/v1beta/models/{model}:{action}`; `raw`: the name's bytes unencoded.
    GeminiPath {
        action: &'static str,
        raw: bool,
    },
}

/// A request being built.
#[derive(Debug)]
struct Draft {
    target: Target,
    method: String,
    path: String,
    model_at: ModelAt,
    model: Option<String>,
    query: Vec<String>,
    /// The credential and how it is presented (added when no auth mutation replaced it).
    auth: Option<(String, Style)>,
    headers: Vec<(String, Vec<u8>)>,
    body: Option<Value>,
    /// Raw JSON for the holes in `body`, and the kind each stands for.
    holes: Vec<(Kind, Vec<u8>)>,
    /// Whole-body mutations, applied in order when the body is serialized.
    whole: Vec<Kind>,
    kinds: BTreeSet<Kind>,
    leave: Leave,
    allow_502: bool,
}

/// How a credential is presented.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Style {
    Bearer,
    XApiKey,
    XGoogApiKey,
    QueryKey,
}

/// A path to a value inside a JSON document.
#[derive(Debug, Clone)]
enum Seg {
    Key(String),
    Index(usize),
}

fn paths(v: &Value, prefix: &mut Vec<Seg>, out: &mut Vec<Vec<Seg>>) {
    match v {
        Value::Object(map) => {
            for (k, child) in map {
                prefix.push(Seg::Key(k.clone()));
                out.push(prefix.clone());
                paths(child, prefix, out);
                prefix.pop();
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                prefix.push(Seg::Index(i));
                out.push(prefix.clone());
                paths(child, prefix, out);
                prefix.pop();
            }
        }
        _ => {}
    }
}

fn get<'v>(v: &'v Value, path: &[Seg]) -> &'v Value {
    path.iter().fold(v, |v, seg| match seg {
        Seg::Key(k) => &v[k.as_str()],
        Seg::Index(i) => &v[*i],
    })
}

fn at<'v>(v: &'v mut Value, path: &[Seg]) -> &'v mut Value {
    path.iter().fold(v, |v, seg| match seg {
        Seg::Key(k) => &mut v[k.as_str()],
        Seg::Index(i) => &mut v[*i],
    })
}

/// Percent-encodes all but unreserved characters and `/` (so `../` stays a traversal).
fn encode(s: &[u8]) -> String {
    s.iter()
        .map(|&b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `depth` nested arrays or objects around a number.
fn nested(depth: usize, objects: bool) -> Vec<u8> {
    let (open, close) = if objects { ("{\"a\":", "}") } else { ("[", "]") };
    [open.repeat(depth), "1".into(), close.repeat(depth)].concat().into_bytes()
}

/// The generator: a seeded random source and what it knows of the gateway.
struct Gen {
    rng: StdRng,
    world: World,
    seed: u64,
    n: u64,
}

impl Gen {
    fn new(seed: u64, world: World) -> Gen {
        Gen { rng: StdRng::seed_from_u64(seed), world, seed, n: 0 }
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.rng.random_range(0..items.len())]
    }

    fn chance(&mut self, p: f64) -> bool {
        self.rng.random_bool(p)
    }

    /// A string of `len` bytes of assorted characters (ASCII, accents, CJK, emoji).
    fn long_text(&mut self, len: usize) -> String {
        let alphabet = ["a", "Z", "7", " ", "é", "字", "🚀", "\\", "\"", "/", "%", "+", "&", "="];
        let mut s = String::with_capacity(len + 4);
        while s.len() < len {
            s.push_str(self.pick(&alphabet));
        }
        s
    }

    fn target(&mut self) -> Target {
        let total: u32 = TARGETS.iter().map(|(_, w)| w).sum();
        let mut roll = self.rng.random_range(0..total);
        for (t, w) in TARGETS {
            if roll < *w {
                return *t;
            }
            roll -= w;
        }
        unreachable!("weights cover the roll")
    }

    /// The next request of the storm.
    fn case(&mut self) -> Case {
        self.n += 1;
        let target = self.target();
        let mut d = self.draft(target);
        if d.kinds.is_empty() && self.chance(0.85) {
            let rounds = match self.rng.random_range(0..10) {
                0..6 => 1,
                6..9 => 2,
                _ => 3,
            };
            for _ in 0..rounds {
                self.mutate(&mut d);
            }
        }
        self.finish(d)
    }

    /// A valid request for `target` (or a stray one).
    fn draft(&mut self, target: Target) -> Draft {
        let mut d = Draft {
            target,
            method: "GET".into(),
            path: String::new(),
            model_at: ModelAt::Nowhere,
            model: None,
            query: Vec::new(),
            auth: None,
            headers: Vec::new(),
            body: None,
            holes: Vec::new(),
            whole: Vec::new(),
            kinds: BTreeSet::new(),
            leave: Leave::Never,
            allow_502: false,
        };
        let tenant_key = if self.chance(0.85) { self.world.key.clone() } else { self.world.spare_key.clone() };
        let admin = self.chance(0.75).then(|| (ADMIN_TOKEN.to_string(), Style::Bearer));
        if self.chance(0.5) {
            d.headers.push(("x-request-id".into(), format!("fuzz-{}-{}", self.seed, self.n).into_bytes()));
        }
        match target {
            Target::Chat => {
                let mut body: Value = serde_json::from_str(&CHAT).unwrap();
                let model = self.pick(&["gpt-4o-mini", "gpt-4o-mini", "gpt-4o-mini", "or-sonnet"]);
                body["stream"] = json!(self.chance(0.3));
                if body["stream"] == json!(true) && self.chance(0.5) {
                    body["stream_options"] = json!({ "include_usage": true });
                }
                body["temperature"] = json!(0.2);
                self.proxied(&mut d, "/v1/chat/completions", body, model);
                d.auth = Some((tenant_key, Style::Bearer));
            }
            Target::Messages => {
                let body = json!({
                    "model": "claude-sonnet-4-5", "max_tokens": 200, "stream": self.chance(0.3),
                    "system": "Answer briefly.",
                    "messages": [{ "role": "user", "content": [{ "type": "text", "text": "Compare object and block storage." }] }],
                });
                let model = self.pick(&["claude-sonnet-4-5", "claude-latest"]);
                self.proxied(&mut d, "/v1/messages", body, model);
                let style = self.pick(&[Style::XApiKey, Style::XApiKey, Style::Bearer]);
                d.auth = Some((tenant_key, style));
            }
            Target::Gemini => {
                let body = json!({
                    "contents": [{ "role": "user", "parts": [{ "text": "Compare object and block storage." }] }],
                    "generationConfig": { "maxOutputTokens": 200, "temperature": 0.5 },
                });
                d.method = "POST".into();
                d.body = Some(body);
                d.model = Some("gemini-2.5-flash".into());
                let stream = self.chance(0.5);
                let action = if stream { "streamGenerateContent" } else { "generateContent" };
                d.model_at = ModelAt::GeminiPath { action, raw: false };
                if stream && self.chance(0.6) {
                    d.query.push("alt=sse".into());
                }
                let style = self.pick(&[Style::XGoogApiKey, Style::QueryKey, Style::Bearer]);
                d.auth = Some((tenant_key, style));
            }
            Target::Models => {
                d.path = "/v1/models".into();
                d.auth = Some((tenant_key, self.pick(&[Style::Bearer, Style::XApiKey, Style::QueryKey])));
            }
            Target::SelfService => {
                let what = self.pick(&["balance", "usage", "transactions"]);
                d.path = format!("/v1/billing/{what}");
                d.query = self.report_params(what != "balance");
                d.auth = Some((tenant_key, self.pick(&[Style::Bearer, Style::XApiKey])));
            }
            Target::Quote => {
                d.method = "POST".into();
                d.path = "/internal/billing/quote".into();
                let body = if self.chance(0.5) {
                    let model = self.pick(&["gpt-4o-mini", "claude-sonnet-4-5", "gemini-2.5-flash", "or-sonnet"]);
                    json!({ "model": model, "usage": {
                        "input_uncached_tokens": 1200, "cache_read_tokens": 100, "cache_write_tokens": 10,
                        "output_tokens": 300, "reasoning_tokens": 20, "fees": { "web_search": 1 } } })
                } else {
                    let i = self.rng.random_range(0..self.world.answers.len());
                    let (model, text, stream) = self.world.answers[i].clone();
                    json!({ "model": model, "response": text, "stream": stream, "status": 200 })
                };
                d.model = body["model"].as_str().map(str::to_string);
                d.body = Some(body);
                d.model_at = ModelAt::Body;
                d.auth = admin;
            }
            Target::AdminRead => {
                self.admin_read(&mut d);
                d.auth = admin;
            }
            Target::AdminWrite => {
                self.admin_write(&mut d);
                d.auth = admin;
            }
            Target::Ops => {
                d.path = self.pick(&["/healthz", "/readyz", "/metrics", "/internal/openapi.json"]).into();
            }
            Target::Stray => self.stray(&mut d),
        }
        d
    }

    fn proxied(&mut self, d: &mut Draft, path: &str, body: Value, model: &str) {
        d.method = "POST".into();
        d.path = path.into();
        d.body = Some(body);
        d.model = Some(model.into());
        d.model_at = ModelAt::Body;
        d.headers.push(("content-type".into(), b"application/json".to_vec()));
    }

    /// Query parameters of the billing reads, mostly sensible.
    fn report_params(&mut self, paged: bool) -> Vec<String> {
        let mut q = Vec::new();
        if self.chance(0.5) {
            q.push("start=2026-01-01T00:00:00Z".into());
        }
        match self.rng.random_range(0..10) {
            0..3 => q.push("end=2099-01-01T00:00:00%2B01:00".into()),
            // A range with no rows in it.
            3 => q.push("start=2098-01-01T00:00:00Z&end=2099-01-01T00:00:00Z".into()),
            _ => {}
        }
        if paged && self.chance(0.5) {
            q.push(format!("limit={}", self.rng.random_range(1..=1000)));
        }
        if paged && self.chance(0.3) {
            q.push(format!("model={}", self.pick(&["gpt-4o-mini", "claude-sonnet-4-5", "unknown"])));
        }
        if paged && self.chance(0.2) {
            q.push(format!("status={}", self.pick(&["ok", "routing_error", "client_disconnected"])));
        }
        q
    }

    fn admin_read(&mut self, d: &mut Draft) {
        let unknown = Uuid::from_u128(self.rng.random());
        let tenant = self.pick(&[self.world.tenant, self.world.spare_tenant, self.world.idle_tenant, unknown]);
        match self.rng.random_range(0..7) {
            0 => {
                d.path = "/internal/billing/transactions".into();
                d.query = self.report_params(true);
                d.query.push(format!("tenant_id={tenant}"));
            }
            1 => {
                d.path = "/internal/billing/summary".into();
                d.query = self.report_params(false);
                d.query.push(format!("tenant_id={tenant}"));
            }
            2 => {
                d.path = "/internal/billing/reconciliation".into();
                d.query = self.report_params(false);
                d.query.push(format!("threshold_nano={}", self.rng.random_range(0..1_000_000)));
            }
            3 => d.path = format!("/admin/tenants/{}/balance", self.admin_tenant(true)),
            4 => d.path = format!("/admin/tenants/{}/keys", self.admin_tenant(true)),
            5 => {
                d.path = format!("/admin/tenants/{}/transactions", self.admin_tenant(true));
                d.query.push(format!("limit={}", self.rng.random_range(1..=20)));
            }
            _ => d.path = "/internal/plugins".into(),
        }
    }

    /// A tenant id for an admin path: the spare tenant mostly, the idle one, the main one
    /// (only to read: its books must balance), an unknown one, or not an id at all.
    fn admin_tenant(&mut self, read: bool) -> String {
        match self.rng.random_range(0..10) {
            0..4 => self.world.spare_tenant.to_string(),
            4 => self.world.idle_tenant.to_string(),
            5 if read => self.world.tenant.to_string(),
            5..8 => Uuid::from_u128(self.rng.random()).to_string(),
            _ => self.pick(&["not-a-uuid", "..", "%00", "00000000-0000-0000-0000-00000000000g", ""]).into(),
        }
    }

    fn admin_write(&mut self, d: &mut Draft) {
        d.method = "POST".into();
        d.headers.push(("content-type".into(), b"application/json".to_vec()));
        let n = self.n;
        match self.rng.random_range(0..5) {
            0 => {
                d.path = "/admin/tenants".into();
                d.body = Some(json!({ "name": format!("fuzz tenant {n}") }));
            }
            1 => {
                d.path = format!("/admin/tenants/{}/keys", self.admin_tenant(false));
                d.body = Some(json!({ "name": format!("fuzz key {n}") }));
            }
            2 | 3 => {
                let kind = self.pick(&["topups", "adjustments"]);
                d.path = format!("/admin/tenants/{}/{kind}", self.admin_tenant(false));
                let id = format!("fuzz-credit-{}", self.rng.random_range(0..20));
                d.body = Some(if self.chance(0.5) {
                    json!({ "id": id, "amount_usd": "1.25", "note": "fuzz" })
                } else {
                    json!({ "id": id, "amount_nano": 5_000, "note": null })
                });
            }
            _ => {
                let key = match self.rng.random_range(0..4) {
                    0 => self.world.spare_key_id.to_string(),
                    1 => "not-a-key".into(),
                    _ => Uuid::from_u128(self.rng.random()).to_string(),
                };
                d.path = format!("/admin/keys/{key}/revoke");
            }
        }
    }

    fn stray(&mut self, d: &mut Draft) {
        if self.chance(0.5) {
            let (method, path) = self.pick(&[
                ("GET", "/v1/chat/completions"),
                ("PUT", "/v1/messages"),
                ("DELETE", "/admin/tenants"),
                ("PATCH", "/v1/billing/balance"),
                ("GET", "/v1beta/models/gemini-2.5-flash:generateContent"),
                ("POST", "/healthz"),
                ("OPTIONS", "/metrics"),
                ("HEAD", "/v1/models"),
                ("FUZZ", "/v1/messages"),
                ("POST", "/v1/models"),
                ("DELETE", "/internal/billing/quote"),
            ]);
            d.method = method.into();
            d.path = path.into();
            d.kinds.insert(WrongMethod);
        } else {
            let long = format!("/{}", "a/".repeat(1536));
            d.path = self
                .pick(&[
                    "/",
                    "/v1",
                    "/v1/",
                    "/v1/chat/completions/extra",
                    "/v1beta/models/x:countTokens",
                    "/v1beta/models/:generateContent",
                    "/v1beta/models/gemini-2.5-flash:generateContent/extra",
                    "//v1/messages",
                    "/v1/messages/batches",
                    "/v1/billing/",
                    "/v1/billing/../../admin/tenants",
                    "/%2e%2e/admin/tenants",
                    "/admin",
                    "/internal/billing",
                    "/admin/tenants/x/y/z",
                    long.as_str(),
                ])
                .to_string();
            d.method = self.pick(&["GET", "POST"]).into();
            d.kinds.insert(StrayPath);
        }
        if self.chance(0.5) {
            d.auth = Some((self.world.key.clone(), Style::Bearer));
        }
    }

    /// Applies one mutation that fits the draft.
    fn mutate(&mut self, d: &mut Draft) {
        let proxied = matches!(d.target, Target::Chat | Target::Messages | Target::Gemini);
        let mut groups: Vec<&[Kind]> = vec![AUTH_KINDS, HEADER_KINDS, QUERY_KINDS];
        if d.body.is_some() {
            groups.extend([VALUE_KINDS, VALUE_KINDS, BODY_KINDS]);
        }
        if d.model_at != ModelAt::Nowhere {
            groups.push(MODEL_KINDS);
        }
        if proxied {
            groups.push(LEAVE_KINDS);
        }
        let group = self.pick(&groups);
        let kind = self.pick(group);
        match kind {
            k if VALUE_KINDS.contains(&k) => self.replace_value(d, k),
            k if BODY_KINDS.contains(&k) => d.whole.push(k),
            k if MODEL_KINDS.contains(&k) => self.model(d, k),
            k if AUTH_KINDS.contains(&k) => self.credential(d, k),
            k if HEADER_KINDS.contains(&k) => self.header(d, k),
            k if QUERY_KINDS.contains(&k) => self.query(d, k),
            LeaveAfterFirstChunk => {
                match d.model_at {
                    ModelAt::GeminiPath { raw, .. } => {
                        d.model_at = ModelAt::GeminiPath { action: "streamGenerateContent", raw };
                    }
                    _ => {
                        if let Some(body) = d.body.as_mut().filter(|b| b.is_object()) {
                            body["stream"] = json!(true);
                        }
                    }
                }
                d.leave = Leave::AfterFirstChunk;
                d.kinds.insert(kind);
            }
            LeaveBeforeAnswer => {
                d.leave = Leave::BeforeAnswer(self.rng.random_range(0..60));
                d.kinds.insert(kind);
            }
            other => unreachable!("{other:?} is in no group"),
        }
    }

    /// The raw JSON text of a hostile value of `kind`.
    fn hostile_value(&mut self, kind: Kind) -> Vec<u8> {
        let text: &str = match kind {
            StringForNumber => self.pick(&["\"100\"", "\"1e3\"", "\"\"", "\"-1\"", "\"0x10\"", "\"NaN\""]),
            NumberForString => self.pick(&["42", "0", "-7", "1.5"]),
            Float => self.pick(&["0.5", "100.0", "1e-7", "-0.0", "2.5e2", "0.999999999999999999999"]),
            Negative => self.pick(&["-1", "-9223372036854775808", "-0", "-4096", "-1e3"]),
            Huge => self.pick(&[
                "1e308",
                "18446744073709551616",
                "18446744073709551615",
                "9223372036854775807",
                "9223372036854775808",
                "1e309",
                "-1e308",
                "123456789012345678901234567890",
            ]),
            Null => "null",
            Array => self.pick(&["[]", "[1,\"a\",null,{}]", "[[[]]]", "[\"gpt-4o-mini\"]"]),
            Object => self.pick(&["{}", "{\"a\":{\"b\":[1]}}", "{\"type\":\"text\",\"text\":null}"]),
            Bool => self.pick(&["true", "false"]),
            NulAndControl => {
                let s =
                    self.pick(&["a\0b", "\0", "x\u{1}\u{1b}[31m\u{7f}y", "\u{2028}\u{2029}\u{feff}", "\u{0}\n\r\t"]);
                return serde_json::to_vec(s).unwrap();
            }
            LongString => return serde_json::to_vec(&self.long_text(3072)).unwrap(),
            Nested200 => return nested(200, self.chance(0.3)),
            Nested10k => return nested(10_000, self.chance(0.3)),
            InvalidUtf8 => {
                return self
                    .pick(&[
                        &b"\"\xff\xfe\""[..],
                        b"\"a\xc0\x80b\"",
                        b"\"\xed\xa0\x80\"",
                        b"\"\xf4\x90\x80\x80\"",
                        b"\"\xc3\"",
                    ])
                    .to_vec();
            }
            RawControl => return self.pick(&[&b"\"a\x00b\""[..], b"\"\x01\x1f\"", b"\"line\nbreak\""]).to_vec(),
            other => unreachable!("{other:?} is not a value kind"),
        };
        text.as_bytes().to_vec()
    }

    /// Replaces a value of the body (a number where one is wanted, a string where the kind
    /// is about text) or adds a top-level key, with a hole for the hostile value.
    fn replace_value(&mut self, d: &mut Draft, kind: Kind) {
        let raw = self.hostile_value(kind);
        let hole = Value::String(format!("{HOLE}{}", d.holes.len()));
        let Some(body) = d.body.as_mut() else { return };
        let mut all = Vec::new();
        paths(body, &mut Vec::new(), &mut all);
        let wanted = |v: &Value| match kind {
            StringForNumber | Float | Negative | Huge => v.is_number(),
            NumberForString | NulAndControl | LongString | InvalidUtf8 | RawControl => v.is_string(),
            _ => true,
        };
        let fitting: Vec<Vec<Seg>> = all.iter().filter(|p| wanted(get(body, p))).cloned().collect();
        let candidates = if fitting.is_empty() { all } else { fitting };
        if candidates.is_empty() || self.chance(0.2) {
            let key = self.pick(&[
                "max_tokens",
                "max_completion_tokens",
                "stream",
                "stream_options",
                "model",
                "n",
                "generationConfig",
                "generation_config",
                "system",
                "tools",
                "usage",
                "response",
                "amount_nano",
                "",
            ]);
            if let Value::Object(map) = body {
                map.insert(key.into(), hole);
            }
        } else {
            let i = self.rng.random_range(0..candidates.len());
            *at(body, &candidates[i]) = hole;
        }
        d.holes.push((kind, raw));
    }

    fn model(&mut self, d: &mut Draft, kind: Kind) {
        let long = if self.chance(0.5) { "m".repeat(3072) } else { "é".repeat(1536) };
        let name: String = match kind {
            ModelEmpty => String::new(),
            ModelLong => long,
            ModelNul => self.pick(&["gpt-4o-mini\0", "\0", "claude\0-sonnet-4-5"]).into(),
            ModelNewline => self.pick(&["gpt-4o-mini\n", "a\r\nb", "\ngemini-2.5-flash"]).into(),
            ModelUnicode => self.pick(&["gpt-4o-mini-🚀", "模型", "\u{202e}inim-o4-tpg", "gpt\u{200b}-4o-mini"]).into(),
            ModelDotDot => self.pick(&["../../admin/tenants", "..", "../gemini-2.5-flash", "..%2f..%2fadmin"]).into(),
            ModelUnknown => self.pick(&["unknown-model", "GPT-4O-MINI", " gpt-4o-mini", "gpt-4o-mini "]).into(),
            ModelMisrouted => {
                let name = self.pick(&[
                    "claude-sonnet-4-5",
                    "gpt-4o-mini",
                    "gemini-2.5-flash",
                    "unpriced",
                    "unreachable",
                    "claude-latest",
                    "or-haiku",
                ]);
                d.allow_502 |= name == "unreachable";
                name.into()
            }
            other => unreachable!("{other:?} is not a model kind"),
        };
        if let ModelAt::GeminiPath { action, .. } = d.model_at {
            d.model_at = ModelAt::GeminiPath { action, raw: self.chance(0.3) };
        }
        d.model = Some(name);
        d.kinds.insert(kind);
    }

    fn credential(&mut self, d: &mut Draft, kind: Kind) {
        let secret = d.auth.take().map_or_else(|| self.world.key.clone(), |(s, _)| s);
        let auth = |v: Vec<u8>| ("authorization".to_string(), v);
        let headers: Vec<(String, Vec<u8>)> = match kind {
            AuthMissing => vec![],
            AuthNoScheme => vec![auth(secret.into_bytes())],
            AuthSpaces => {
                let v = self.pick(&["Bearer      {}", "   Bearer {}   ", "Bearer\t{}", "Bearer", "Bearer ", " "]);
                vec![auth(v.replace("{}", &secret).into_bytes())]
            }
            AuthLong => vec![auth(format!("Bearer {secret}{}", "A".repeat(3072)).into_bytes())],
            AuthNonAscii => {
                let v = self.pick(&["Bearer XJP_ключ".as_bytes(), b"Bearer XJP_\xe9\xff", b"Bearer \xc3\xa9"]);
                let mut v = v.to_vec();
                if self.chance(0.5) {
                    v.extend_from_slice(secret.as_bytes());
                }
                vec![auth(v)]
            }
            AuthOtherScheme => {
                let v =
                    self.pick(&["Basic {}", "Token {}", "bearer {}", "BEARER {}", "Bearer: {}", "Bearer Bearer {}"]);
                vec![auth(v.replace("{}", &secret).into_bytes())]
            }
            AuthConflict => {
                let right = secret.clone().into_bytes();
                let wrong = b"XJP_not-the-key".to_vec();
                match self.rng.random_range(0..3) {
                    0 => vec![auth([&b"Bearer "[..], &wrong].concat()), ("x-api-key".into(), right)],
                    1 => vec![auth([&b"Bearer "[..], &right].concat()), auth([&b"Bearer "[..], &wrong].concat())],
                    _ => vec![("x-api-key".into(), wrong), ("x-goog-api-key".into(), right)],
                }
            }
            AuthWrong => {
                let v =
                    self.pick(&["Bearer XJP_not-a-real-key", "Bearer sk-something-else", "Bearer XJP_", "Bearer ''"]);
                vec![auth(v.as_bytes().to_vec())]
            }
            other => unreachable!("{other:?} is not a credential kind"),
        };
        d.headers.extend(headers);
        d.kinds.insert(kind);
    }

    fn header(&mut self, d: &mut Draft, kind: Kind) {
        let id_header = self.pick(&["x-request-id", "idempotency-key"]).to_string();
        let header: (String, Vec<u8>) = match kind {
            IdReused => (id_header, self.pick(REUSED_IDS).as_bytes().to_vec()),
            IdBilled => (id_header, BILLED_ID.as_bytes().to_vec()),
            IdLong => (id_header, "r".repeat(3072).into_bytes()),
            IdControl => (id_header, self.pick(&[&b"id\x01x"[..], b"\x00", b"id\tx", b"a\x1b[0m", b"id\x7f"]).to_vec()),
            IdNonAscii => (id_header, self.pick(&["idé".as_bytes(), b"\xff\xfe", "ключ".as_bytes()]).to_vec()),
            HeaderLong => {
                let name = self.pick(&["x-fuzz-long", "anthropic-beta", "user-agent", "openai-organization"]);
                (name.into(), self.long_text(3072).replace(|c: char| !c.is_ascii_graphic(), "x").into_bytes())
            }
            HeaderControl => {
                let name = self.pick(&["x-fuzz", "anthropic-version", "content-type", "accept"]);
                (name.into(), self.pick(&[&b"a\x01b"[..], b"\x00", b"application/json\x7f", b"x\x0by"]).to_vec())
            }
            ContentType => {
                let v = self.pick(&[
                    "text/plain",
                    "multipart/form-data; boundary=x",
                    "application/json; charset=latin1",
                    "application/x-www-form-urlencoded",
                    "",
                ]);
                ("content-type".into(), v.as_bytes().to_vec())
            }
            other => unreachable!("{other:?} is not a header kind"),
        };
        // A replaced content type replaces the one the draft had.
        if header.0 == "content-type" {
            d.headers.retain(|(n, _)| n != "content-type");
        }
        d.headers.insert(0, header);
        d.kinds.insert(kind);
    }

    fn query(&mut self, d: &mut Draft, kind: Kind) {
        let key = self.world.key.clone();
        let segment: String = match kind {
            QueryPercent => {
                let s = self.pick(&[
                    "%zz=1",
                    "a=%",
                    "%=%",
                    "b=%4",
                    "c=%E2%82",
                    "d=%FF%FE",
                    "k%65y={key}",
                    "alt%3Dsse",
                    "%2561lt=sse",
                    "+=+",
                    "a==b=",
                    "&&&",
                    "%C0%AF=%E0%80%AF",
                ]);
                s.replace("{key}", &key)
            }
            QueryDupKey => {
                let s = self.pick(&[
                    "key=XJP_wrong&key={key}",
                    "key={key}&key=XJP_wrong",
                    "key=&key={key}",
                    "alt=sse&alt=json",
                    "alt=json&alt=sse",
                    "limit=1&limit=5000",
                    "tenant_id={spare}&tenant_id={tenant}",
                    "start=2026-01-01T00:00:00Z&start=nope",
                ]);
                s.replace("{key}", &key)
                    .replace("{spare}", &self.world.spare_tenant.to_string())
                    .replace("{tenant}", &self.world.tenant.to_string())
            }
            QueryNul => self
                .pick(&[
                    "key=%00",
                    "model=%00",
                    "status=ok%00",
                    "tenant_id=%00",
                    "start=2026-01-01T00:00:00Z%00",
                    "cursor=%00",
                    "alt=sse%00",
                    "%00=%00",
                    "limit=1%00",
                    "model=gpt-4o-mini%00x",
                    "api_key_id=%00",
                ])
                .into(),
            QueryLong => {
                let name = self.pick(&["q", "model", "status", "cursor", "key", "alt"]);
                format!("{name}={}", encode(self.long_text(3072).as_bytes()))
            }
            QueryOddParam => {
                let s = self.pick(&[
                    "cursor=zz",
                    "cursor={max}",
                    "cursor={min}",
                    "cursor={small}",
                    "start=0001-01-01T00:00:00Z",
                    "end=9999-12-31T23:59:59Z",
                    "start=2026-13-45T99:99:99Z",
                    "start=2026-01-01T00:00:00%2B23:59",
                    "end=1970-01-01T00:00:00Z",
                    "start=9999-12-31T23:59:59Z",
                    "limit=0",
                    "limit=-1",
                    "limit=1001",
                    "limit=1e3",
                    "limit=99999999999999999999",
                    "limit=",
                    "threshold_nano=-1",
                    "threshold_nano=9223372036854775807",
                    "threshold_nano=9223372036854775808",
                    "tenant_id={spare}",
                    "tenant_id={idle}",
                    "tenant_id={random}",
                    "tenant_id=garbage",
                    "api_key_id={spare_key}",
                    "api_key_id=garbage",
                    "status=%27%3B%20DROP%20TABLE%20credits%3B--",
                    "model=%E2%80%AE",
                ]);
                s.replace("{max}", &hex::encode("9223372036854775807.9223372036854775807"))
                    .replace("{min}", &hex::encode("-9223372036854775808.-9223372036854775808"))
                    .replace("{small}", &hex::encode("1.1"))
                    .replace("{spare}", &self.world.spare_tenant.to_string())
                    .replace("{idle}", &self.world.idle_tenant.to_string())
                    .replace("{random}", &Uuid::from_u128(self.rng.random()).to_string())
                    .replace("{spare_key}", &self.world.spare_key_id.to_string())
            }
            other => unreachable!("{other:?} is not a query kind"),
        };
        let i = self.rng.random_range(0..=d.query.len());
        d.query.insert(i, segment);
        d.kinds.insert(kind);
    }

    /// Serializes the draft into the request as sent.
    fn finish(&mut self, mut d: Draft) -> Case {
        if let (ModelAt::Body, Some(model), Some(body)) = (d.model_at, &d.model, d.body.as_mut()) {
            let in_place = body.get("model").and_then(Value::as_str).is_some_and(|m| !m.starts_with(HOLE));
            if in_place {
                body["model"] = json!(model);
            }
        }
        let mut headers = std::mem::take(&mut d.headers);
        match d.auth.take() {
            Some((secret, Style::Bearer)) => headers.push(("authorization".into(), format!("Bearer {secret}").into())),
            Some((secret, Style::XApiKey)) => headers.push(("x-api-key".into(), secret.into_bytes())),
            Some((secret, Style::XGoogApiKey)) => headers.push(("x-goog-api-key".into(), secret.into_bytes())),
            Some((secret, Style::QueryKey)) => d.query.push(format!("key={}", encode(secret.as_bytes()))),
            None => {}
        }
        let mut uri = match d.model_at {
            ModelAt::GeminiPath { action, raw } => {
                let model = d.model.clone().unwrap_or_default();
                let model = if raw { model.into_bytes() } else { encode(model.as_bytes()).into_bytes() };
                [&b"/v1beta/models/"[..], &model, b":", action.as_bytes()].concat()
            }
            _ => d.path.clone().into_bytes(),
        };
        if !d.query.is_empty() {
            uri.push(b'?');
            uri.extend_from_slice(d.query.join("&").as_bytes());
        }
        let body = match d.body.take() {
            Some(body) => self.body_bytes(&mut d, &body),
            None => Vec::new(),
        };
        if d.kinds.is_empty() {
            d.kinds.insert(Valid);
        }
        Case {
            n: self.n,
            target: d.target,
            method: d.method,
            uri,
            headers,
            body,
            kinds: d.kinds,
            leave: d.leave,
            allow_502: d.allow_502,
        }
    }

    fn body_bytes(&mut self, d: &mut Draft, body: &Value) -> Vec<u8> {
        let mut bytes = serde_json::to_vec(body).unwrap();
        for (i, (kind, raw)) in d.holes.iter().enumerate() {
            let marker = format!("\"{HOLE}{i}\"");
            if let Some(p) = bytes.windows(marker.len()).position(|w| w == marker.as_bytes()) {
                bytes.splice(p..p + marker.len(), raw.iter().copied());
                d.kinds.insert(*kind);
            }
        }
        for kind in d.whole.clone() {
            match kind {
                EmptyBody => bytes.clear(),
                NonJson => {
                    bytes = self
                        .pick(&[
                            &b"hello"[..],
                            b"model=gpt-4o-mini&stream=true",
                            b"<xml/>",
                            b"\xff\xfe\x00\x00",
                            b"{'model': 'gpt-4o-mini'}",
                            b"\xef\xbb\xbf{}",
                            b"{\"model\":\"gpt-4o-mini\"} trailing",
                            b"{\"model\":\"gpt-4o-mini\",}",
                            b"\x00",
                        ])
                        .to_vec()
                }
                TopLevelScalar => {
                    bytes = self.pick(&[&b"\"gpt-4o-mini\""[..], b"42", b"null", b"true", b"1e999"]).to_vec()
                }
                Oversized => {
                    let text = "x".repeat(70 << 10);
                    bytes = serde_json::to_vec(
                        &json!({ "model": "gpt-4o-mini", "messages": [{ "role": "user", "content": text }] }),
                    )
                    .unwrap();
                }
                DuplicateKeys => {
                    let keys: Vec<String> = body.as_object().map(|m| m.keys().cloned().collect()).unwrap_or_default();
                    let key = if keys.is_empty() || self.chance(0.3) {
                        "model".to_string()
                    } else {
                        keys[self.rng.random_range(0..keys.len())].clone()
                    };
                    let value: Vec<u8> = match self.rng.random_range(0..4) {
                        0 => b"\"unknown-model\"".to_vec(),
                        1 => b"true".to_vec(),
                        2 => b"100000000".to_vec(),
                        _ => {
                            let kind = self.pick(VALUE_KINDS);
                            self.hostile_value(kind)
                        }
                    };
                    let Some(open) = bytes.iter().position(|&b| b == b'{') else { continue };
                    let entry = [serde_json::to_vec(&key).unwrap(), b":".to_vec(), value, b",".to_vec()].concat();
                    // Before or after the original key: the first or the last one wins.
                    if self.chance(0.5) || bytes.ends_with(b"{}") {
                        bytes.splice(open + 1..open + 1, entry);
                    } else {
                        let close = bytes.len() - 1;
                        let mut tail = vec![b','];
                        tail.extend_from_slice(&entry[..entry.len() - 1]);
                        bytes.splice(close..close, tail);
                    }
                }
                TopLevelArray => bytes = [&b"["[..], &bytes, b"]"].concat(),
                Truncated if !bytes.is_empty() => bytes.truncate(self.rng.random_range(0..bytes.len())),
                _ => continue,
            }
            d.kinds.insert(kind);
        }
        bytes
    }
}

/// What a 4xx body must look like: the error format of the API the path speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// `{"error":{"message",...}}` (an upstream error passed through keeps its own fields).
    OpenAi,
    /// The gateway's own OpenAI object: `{"error":{"message","type","param","code"}}`.
    OpenAiStrict,
    /// `{"type":"error","error":{"type","message"}}`
    Anthropic,
    /// `{"error":{"code","message","status"}}`
    Gemini,
}

/// The error format a path answers in (the router's URL space, spelled out).
fn shape_for(method: &str, path: &str) -> Shape {
    let gemini = || {
        let rest = path.strip_prefix("/v1beta/models/").or_else(|| path.strip_prefix("/v1/models/"));
        rest.and_then(|r| r.rsplit_once(':')).is_some_and(|(model, action)| {
            !model.is_empty() && !model.contains('/') && matches!(action, "generateContent" | "streamGenerateContent")
        })
    };
    match (method, path) {
        ("POST", "/v1/chat/completions") => Shape::OpenAi,
        ("POST", "/v1/messages") => Shape::Anthropic,
        ("POST", _) if gemini() => Shape::Gemini,
        _ if path.starts_with("/v1beta") => Shape::Gemini,
        _ if path.starts_with("/v1/messages") => Shape::Anthropic,
        _ => Shape::OpenAiStrict,
    }
}

/// Whether `body` is an error of `shape` for `status`; why not otherwise.
fn check_shape(shape: Shape, status: u16, body: &[u8]) -> Result<(), String> {
    let v: Value = serde_json::from_slice(body).map_err(|e| format!("not JSON ({e})"))?;
    let err = &v["error"];
    let text = |v: &Value| v.is_string();
    let ok = match shape {
        Shape::OpenAi => err.is_object() && text(&err["message"]),
        Shape::OpenAiStrict => {
            err.is_object()
                && text(&err["message"])
                && text(&err["type"])
                && ["param", "code"].iter().all(|k| err.as_object().is_some_and(|o| o.contains_key(*k)))
        }
        Shape::Anthropic => v["type"] == "error" && text(&err["type"]) && text(&err["message"]),
        Shape::Gemini => err["code"] == json!(status) && text(&err["message"]) && text(&err["status"]),
    };
    if ok { Ok(()) } else { Err(format!("not the {shape:?} error shape")) }
}

/// How one request went.
#[derive(Debug)]
enum Outcome {
    Answered {
        status: u16,
        content_type: Option<String>,
        body: Vec<u8>,
        /// The body broke off (the connection was cut mid-answer).
        body_error: Option<String>,
        /// Sent over a bare socket (the request is not valid HTTP for a client library).
        raw: bool,
    },
    /// The client left as the case asked.
    Left,
    /// No answer at all.
    Failed(String),
}

type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// The request as a client library would send it, if it can be one.
fn hyper_request(addr: &str, case: &Case) -> Option<hyper::Request<Full<Bytes>>> {
    let uri: hyper::Uri = format!("http://{addr}{}", std::str::from_utf8(&case.uri).ok()?).parse().ok()?;
    let mut req = hyper::Request::builder().method(hyper::Method::from_bytes(case.method.as_bytes()).ok()?).uri(uri);
    for (name, value) in &case.headers {
        req = req.header(HeaderName::from_bytes(name.as_bytes()).ok()?, HeaderValue::from_bytes(value).ok()?);
    }
    req.body(Full::new(Bytes::from(case.body.clone()))).ok()
}

/// Reads a body to its end (or to the error that cut it).
async fn read_body(mut body: hyper::body::Incoming) -> (Vec<u8>, Option<String>) {
    let mut all = Vec::new();
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(f) => {
                if let Ok(data) = f.into_data() {
                    all.extend_from_slice(&data);
                }
            }
            Err(e) => return (all, Some(e.to_string())),
        }
    }
    (all, None)
}

async fn send(client: &HttpClient, addr: &str, case: &Case) -> Outcome {
    let Some(req) = hyper_request(addr, case) else {
        let bytes = raw_http::request(&case.method, &case.uri, addr, &case.headers, &case.body);
        return match raw_http::exchange(addr, &bytes, Duration::from_secs(20)).await {
            Ok(r) => {
                let content_type = r.header("content-type").map(str::to_string);
                Outcome::Answered { status: r.status, content_type, body: r.body, body_error: None, raw: true }
            }
            Err(e) => Outcome::Failed(e),
        };
    };
    let head = match case.leave {
        Leave::BeforeAnswer(ms) => match tokio::time::timeout(Duration::from_millis(ms), client.request(req)).await {
            Ok(head) => head,
            Err(_) => return Outcome::Left,
        },
        _ => match tokio::time::timeout(Duration::from_secs(20), client.request(req)).await {
            Ok(head) => head,
            Err(_) => return Outcome::Failed("no answer head within 20 s".into()),
        },
    };
    let resp = match head {
        Ok(resp) => resp,
        Err(e) => return Outcome::Failed(format!("{e:?}")),
    };
    let status = resp.status().as_u16();
    let content_type = resp.headers().get("content-type").and_then(|v| v.to_str().ok()).map(str::to_string);
    let mut body = resp.into_body();
    if case.leave == Leave::AfterFirstChunk && status == 200 {
        let _ = tokio::time::timeout(Duration::from_secs(20), body.frame()).await;
        return Outcome::Left;
    }
    match tokio::time::timeout(Duration::from_secs(20), read_body(body)).await {
        Ok((body, body_error)) => Outcome::Answered { status, content_type, body, body_error, raw: false },
        Err(_) => Outcome::Failed(format!("{status}: the body did not end within 20 s")),
    }
}

/// Why an outcome breaks the rules, if it does.
fn judge(case: &Case, outcome: &Outcome) -> Result<(), String> {
    let (status, content_type, body, body_error, raw) = match outcome {
        Outcome::Left => return Ok(()),
        Outcome::Failed(e) => return Err(format!("no answer: {e}")),
        Outcome::Answered { status, content_type, body, body_error, raw } => {
            (*status, content_type, body, body_error, *raw)
        }
    };
    match status {
        200..=299 if body_error.is_some() => Err(format!("{status}, then the body broke: {body_error:?}")),
        200..=299 => Ok(()),
        502 if case.allow_502 => Ok(()),
        // hyper's own refusal of a request that is not HTTP (no body: the gateway never saw it).
        400 | 431 if raw && body.is_empty() => Ok(()),
        // A HEAD answer carries no body.
        400..=499 if case.method == "HEAD" => Ok(()),
        400..=499 => {
            let uri = String::from_utf8_lossy(&case.uri);
            let path = uri.split('?').next().unwrap_or_default();
            let shape = shape_for(&case.method, path);
            if !content_type.as_deref().is_some_and(|t| t.starts_with("application/json")) {
                return Err(format!("{status} with content type {content_type:?}"));
            }
            check_shape(shape, status, body).map_err(|e| format!("{status}: {e}"))
        }
        _ => Err(format!("status {status}")),
    }
}

/// Up to `max` characters of `bytes`, escaped.
fn show(bytes: &[u8], max: usize) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut out: String = text.chars().take(max).flat_map(char::escape_debug).collect();
    if text.chars().count() > max {
        out.push_str(&format!("… ({} bytes)", bytes.len()));
    }
    out
}

impl Case {
    /// The request, truncated, for a failure message.
    fn describe(&self) -> String {
        let headers: Vec<String> = self.headers.iter().map(|(n, v)| format!("{n}: {}", show(v, 80))).collect();
        format!(
            "#{} {:?} {:?}\n    {} {}\n    headers: [{}]\n    body: {}\n    leave: {:?}",
            self.n,
            self.target,
            self.kinds,
            self.method,
            show(&self.uri, 200),
            headers.join(", "),
            show(&self.body, 300),
            self.leave,
        )
    }
}

fn describe_outcome(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Answered { status, body, raw, .. } => {
            format!("{status}{} {}", if *raw { " (raw socket)" } else { "" }, show(body, 300))
        }
        other => format!("{other:?}"),
    }
}

/// What the storm came to.
#[derive(Debug, Default)]
struct Report {
    sent: usize,
    /// Requests that were not HTTP, refused by hyper before the gateway saw them.
    not_http: usize,
    tally: BTreeMap<(Target, u16), usize>,
    kinds: BTreeMap<Kind, usize>,
    /// Broken rules by where and what: how often, and the first request that broke it.
    failures: BTreeMap<(Target, String), (usize, String)>,
}

impl Report {
    fn add(&mut self, (case, outcome): (Case, Outcome)) {
        self.sent += 1;
        let status = match &outcome {
            Outcome::Answered { status, body, raw: true, .. } if body.is_empty() => {
                self.not_http += 1;
                *status
            }
            Outcome::Answered { status, .. } => *status,
            _ => 0,
        };
        *self.tally.entry((case.target, status)).or_default() += 1;
        for k in &case.kinds {
            *self.kinds.entry(*k).or_default() += 1;
        }
        if let Err(why) = judge(&case, &outcome) {
            let first = || format!("request {}\n    answer: {}", case.describe(), describe_outcome(&outcome));
            self.failures.entry((case.target, why)).or_insert_with(|| (0, first())).0 += 1;
        }
    }

    /// The broken rules, each with its first request.
    fn failures(&self) -> String {
        let broken: usize = self.failures.values().map(|(n, _)| n).sum();
        let each =
            self.failures.iter().map(|((target, why), (n, first))| format!("{target:?}: {why} (×{n})\n    {first}"));
        format!("{broken} of {} requests broke the rules:\n{}", self.sent, each.collect::<Vec<_>>().join("\n"))
    }
}

/// Sends a well-formed OpenAI chat request with `id`; returns the status.
async fn normal_chat(url: &str, key: &str, id: &str) -> u16 {
    let auth = format!("Bearer {key}");
    let h = [("authorization", auth.as_str()), ("content-type", "application/json"), ("idempotency-key", id)];
    common::http::send("POST", &format!("{url}/v1/chat/completions"), &h, CHAT.clone()).await.status
}

/// The (status, cost) of the tenant's rows for `request_id`, once there is one (waiting up
/// to `within`).
async fn recorded(db: &sqlx::PgPool, tenant: Uuid, request_id: &str, within: Duration) -> Vec<(String, i64)> {
    let start = Instant::now();
    loop {
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT status, cost_nano FROM billing_transactions WHERE tenant_id = $1 AND request_id = $2",
        )
        .bind(tenant)
        .bind(request_id)
        .fetch_all(db)
        .await
        .unwrap();
        if !rows.is_empty() {
            return rows;
        }
        assert!(start.elapsed() < within, "request {request_id} got no row within {within:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hostile_inputs_leave_the_gateway_serving_and_the_books_balanced() {
    let panics_before = common::panics::count();
    let seed = env_u64("XJP_FUZZ_SEED").unwrap_or_else(rand::random);
    let secs = env_u64("XJP_FUZZ_SECS").unwrap_or(15);
    println!("hostile inputs: seed {seed} (XJP_FUZZ_SEED={seed} replays it), {secs} s (XJP_FUZZ_SECS)");

    let mock = mock().await;
    let gw = TestGateway::start(&mock.base_url()).await;
    let db = gw.gw.db.clone();
    let spare = xjp_gateway::db::tenants::create(&db, "fuzz spare").await.unwrap();
    let (spare_row, spare_key) = xjp_gateway::db::keys::create(&db, spare.id, Some("spare")).await.unwrap();
    let credit = xjp_gateway::db::credits::CreditKind::TopUp;
    xjp_gateway::db::credits::insert(&db, spare.id, "initial", credit, 1_000_000_000, None).await.unwrap();
    let idle = xjp_gateway::db::tenants::create(&db, "fuzz idle").await.unwrap();
    let world = World {
        tenant: gw.tenant,
        key: gw.key.clone(),
        spare_tenant: spare.id,
        spare_key,
        spare_key_id: spare_row.id,
        idle_tenant: idle.id,
        answers: recorded_answers(),
    };

    // An id billed before the storm, which the storm reuses.
    assert_eq!(normal_chat(&gw.url, &gw.key, BILLED_ID).await, 200);
    let billed = recorded(&db, gw.tenant, BILLED_ID, Duration::from_secs(10)).await;

    let addr = gw.url.trim_start_matches("http://").to_string();
    let client: HttpClient = Client::builder(TokioExecutor::new()).build_http();
    let mut storm = Gen::new(seed, world);
    let in_flight = Arc::new(tokio::sync::Semaphore::new(8));
    let mut tasks = tokio::task::JoinSet::new();
    let mut report = Report::default();
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        let permit = in_flight.clone().acquire_owned().await.unwrap();
        let case = storm.case();
        let (client, addr) = (client.clone(), addr.clone());
        tasks.spawn(async move {
            let outcome = send(&client, &addr, &case).await;
            drop(permit);
            (case, outcome)
        });
        while let Some(done) = tasks.try_join_next() {
            report.add(done.expect("a storm task panicked"));
        }
    }
    while let Some(done) = tasks.join_next().await {
        report.add(done.expect("a storm task panicked"));
    }
    println!(
        "hostile inputs: {} requests ({} not HTTP, refused by hyper); (target, status) -> count: {:?}",
        report.sent, report.not_http, report.tally
    );
    println!("hostile inputs: kinds: {:?}", report.kinds);
    let panics = common::panics::count() - panics_before;
    assert!(
        report.failures.is_empty() && panics == 0,
        "seed {seed} (XJP_FUZZ_SEED={seed}): {panics} panics; {}",
        report.failures()
    );
    for target in [Target::Chat, Target::Messages, Target::Gemini] {
        assert!(
            report.tally.contains_key(&(target, 200)),
            "seed {seed}: no {target:?} request was served: {:?}",
            report.tally
        );
    }

    // Still serving: health, readiness, and a normal request that is billed.
    let health = common::http::send("GET", &format!("{}/healthz", gw.url), &[], "").await;
    assert_eq!((health.status, health.json()), (200, json!({ "status": "ok" })), "seed {seed}");
    let ready = common::http::send("GET", &format!("{}/readyz", gw.url), &[], "").await;
    assert_eq!(ready.status, 200, "seed {seed}: {}", ready.text());
    let after = format!("fuzz-after-{seed}");
    assert_eq!(normal_chat(&gw.url, &gw.key, &after).await, 200, "seed {seed}");
    let rows = recorded(&db, gw.tenant, &after, Duration::from_secs(5)).await;
    assert!(rows.len() == 1 && rows[0].0 == "ok" && rows[0].1 > 0, "seed {seed}: {rows:?}");

    // The id billed before the storm is still billed once, at the same cost.
    assert_eq!(recorded(&db, gw.tenant, BILLED_ID, Duration::ZERO).await, billed, "seed {seed}");
    assert_books_balance(&gw.gw, &db, gw.tenant).await;
}

/// The inputs the storm found answered with 503 or a broken connection, once each.
#[tokio::test]
async fn what_the_storm_found_is_refused_in_shape() {
    let mock = mock().await;
    let gw = TestGateway::start(&mock.base_url()).await;
    let admin = format!("Bearer {ADMIN_TOKEN}");
    let tenant_key = format!("Bearer {}", gw.key);
    let call = |method: &'static str, path: String, auth: &str, body: &str| {
        let (url, auth, body) = (format!("{}{path}", gw.url), auth.to_string(), body.to_string());
        async move {
            let h = [("authorization", auth.as_str()), ("content-type", "application/json")];
            let r = common::http::send(method, &url, &h, body).await;
            (r.status, r.body.to_vec(), r.headers)
        }
    };
    let refused = |(status, body, _): (u16, Vec<u8>, hyper::HeaderMap), what: &str| {
        assert_eq!(status, 400, "{what}: {}", show(&body, 300));
        check_shape(Shape::OpenAiStrict, 400, &body).unwrap_or_else(|e| panic!("{what}: {e}"));
    };
    // A tenant without transactions in the range: a summary of zeros (was 503, a NULL sum).
    let t = gw.tenant;
    for (path, auth) in
        [(format!("/internal/billing/summary?tenant_id={t}"), &admin), ("/v1/billing/usage".into(), &tenant_key)]
    {
        let (status, body, _) = call("GET", path.clone(), auth, "").await;
        assert_eq!(status, 200, "{path}: {}", show(&body, 300));
        assert_eq!(serde_json::from_slice::<Value>(&body).unwrap()["totals"]["requests"], 0, "{path}");
    }
    // A NUL in a text filter, a cursor out of every time range (were 503: Postgres refused them).
    let far = hex::encode("9223372036854775807.1");
    for q in ["model=%00".to_string(), "status=ok%00".into(), format!("cursor={far}")] {
        refused(call("GET", format!("/internal/billing/transactions?tenant_id={t}&{q}"), &admin, "").await, &q);
        refused(call("GET", format!("/v1/billing/transactions?{q}"), &tenant_key, "").await, &q);
    }
    // A NUL in an admin body (was 503), a credit past 2^53 nano-USD (was recorded, then every
    // read of the tenant's balance was 503: the sum overflowed).
    for (path, body) in [
        ("/admin/tenants".to_string(), r#"{"name":"a\u0000b"}"#),
        (format!("/admin/tenants/{t}/keys"), r#"{"name":"\u0000"}"#),
        (format!("/admin/tenants/{t}/topups"), r#"{"id":"a\u0000","amount_usd":"1"}"#),
        (format!("/admin/tenants/{t}/topups"), r#"{"id":"big","amount_nano":9223372036854775807}"#),
        (format!("/admin/tenants/{t}/adjustments"), r#"{"id":"small","amount_nano":-9223372036854775808}"#),
        (format!("/admin/tenants/{t}/topups"), r#"{"id":"over","amount_usd":"9007199.254740992"}"#),
    ] {
        refused(call("POST", path.clone(), &admin, body).await, body);
    }
    let (status, body, _) = call("GET", format!("/admin/tenants/{t}/balance"), &admin, "").await;
    assert_eq!(status, 200, "{}", show(&body, 300));
    // An answer given before the body was read closes the connection, and says so (a client
    // reused it and its next request failed).
    let big = "x".repeat(70 << 10);
    for (path, auth) in [("/v1/chat/completions", "Bearer XJP_nope"), ("/v1/chat/completions", &tenant_key)] {
        let (status, _, headers) = call("POST", path.into(), auth, &big).await;
        assert!(status == 401 || status == 413, "{status}");
        assert_eq!(headers.get("connection").map(|v| v.as_bytes()), Some(&b"close"[..]), "{status}");
    }
}

/// The generator makes every kind of mutation, valid requests among them but not only.
#[test]
fn the_generator_makes_every_kind() {
    let world = World {
        tenant: Uuid::from_u128(1),
        key: "XJP_main".into(),
        spare_tenant: Uuid::from_u128(2),
        spare_key: "XJP_spare".into(),
        spare_key_id: Uuid::from_u128(3),
        idle_tenant: Uuid::from_u128(4),
        answers: recorded_answers(),
    };
    let mut storm = Gen::new(7, world);
    let mut seen: BTreeMap<Kind, usize> = BTreeMap::new();
    let mut targets = BTreeSet::new();
    let (mut valid, total) = (0, 4000);
    for _ in 0..total {
        let case = storm.case();
        targets.insert(case.target);
        valid += usize::from(case.kinds == BTreeSet::from([Valid]));
        for k in case.kinds {
            *seen.entry(k).or_default() += 1;
        }
    }
    let all: Vec<Kind> = [&[Valid][..]].iter().chain(GROUPS).flat_map(|g| g.iter().copied()).collect();
    let missing: Vec<&Kind> = all.iter().filter(|k| !seen.contains_key(k)).collect();
    assert!(missing.is_empty(), "never generated: {missing:?} (seen {seen:?})");
    assert_eq!(targets.len(), TARGETS.len(), "{targets:?}");
    assert!((total / 20..total / 3).contains(&valid), "{valid} of {total} valid");
}
