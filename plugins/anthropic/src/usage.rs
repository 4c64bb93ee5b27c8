//! Anthropic `usage` objects folded into the gateway's non-overlapping buckets.
//!
//! `input_tokens` is already the uncached part of the prompt; cache reads and cache
//! writes are reported beside it. `cache_creation_input_tokens` is every cache write,
//! split by TTL in `cache_creation.{ephemeral_5m_input_tokens, ephemeral_1h_input_tokens}`
//! when the API sends that breakdown. `output_tokens` includes extended-thinking tokens,
//! which Anthropic does not count separately. Server tools are per-request fees.
//!
//! A run of several iterations (server-side context compaction, beta `compact-*`) reports
//! each in `usage.iterations[]`, and the top-level counts are only the last iteration's:
//! the bill is the sum over the iterations. Once a `usage` object has carried iterations,
//! their sums are the token counts (a later object's top-level counts, the last iteration
//! alone, do not replace them); server tool use stays top-level.

use serde::Deserialize;
use serde::de::MapAccess;
use xjp_plugin_sdk::json::lenient::{Count, Fields, Fold, Obj, Seq, skip, value};
use xjp_plugin_sdk::json::{Value, str_at};
use xjp_plugin_sdk::{Fee, Usage, empty_usage};

/// Fee name for `server_tool_use.web_search_requests`.
pub const WEB_SEARCH_FEE: &str = "web_search";
/// Fee name for `server_tool_use.web_fetch_requests`.
pub const WEB_FETCH_FEE: &str = "web_fetch";

/// The usage fields seen so far. A field present in a later `usage` object replaces
/// the earlier value (stream counts are cumulative); absent or null fields keep it.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct UsageFields {
    seen: bool,
    input: u64,
    cache_read: u64,
    cache_creation: u64,
    ephemeral_5m: Option<u64>,
    ephemeral_1h: Option<u64>,
    output: u64,
    web_search: u64,
    web_fetch: u64,
    model: Option<String>,
    /// A `usage` object carried `iterations`: the token counts are their sums.
    iterations: bool,
}

/// The counts of one `usage` object, each `None` when absent or not a non-negative
/// integer (as [`xjp_plugin_sdk::json::u64_at`] reads them).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct UsageObject {
    /// `input_tokens`.
    pub input_tokens: Option<u64>,
    /// `cache_read_input_tokens`.
    pub cache_read_input_tokens: Option<u64>,
    /// `cache_creation_input_tokens`.
    pub cache_creation_input_tokens: Option<u64>,
    /// `cache_creation.ephemeral_5m_input_tokens`.
    pub ephemeral_5m_input_tokens: Option<u64>,
    /// `cache_creation.ephemeral_1h_input_tokens`.
    pub ephemeral_1h_input_tokens: Option<u64>,
    /// `output_tokens`.
    pub output_tokens: Option<u64>,
    /// `server_tool_use.web_search_requests`.
    pub web_search_requests: Option<u64>,
    /// `server_tool_use.web_fetch_requests`.
    pub web_fetch_requests: Option<u64>,
    /// `iterations[]`, summed; `None` when absent, not an array, or empty.
    pub iterations: Option<Iterations>,
}

/// The token counts of `usage.iterations[]`, summed (saturating). Each iteration's cache
/// writes are split by TTL as a top-level object's are ([`split_writes`]) before summing.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Iterations {
    /// Iterations that were objects.
    pub count: u64,
    /// `input_tokens`.
    pub input: u64,
    /// `cache_read_input_tokens`.
    pub cache_read: u64,
    /// Cache writes with the 5 minute TTL.
    pub write_5m: u64,
    /// Cache writes with the 1 hour TTL.
    pub write_1h: u64,
    /// `output_tokens`.
    pub output: u64,
}

impl<'de> Fold<'de> for Iterations {
    type Item = Obj<UsageObject>;

    fn add(&mut self, item: Obj<UsageObject>) {
        let Some(it) = item.0 else { return };
        let (write_5m, write_1h) = split_writes(
            it.cache_creation_input_tokens.unwrap_or(0),
            it.ephemeral_5m_input_tokens,
            it.ephemeral_1h_input_tokens,
        );
        let add = |sum: &mut u64, n: u64| *sum = sum.saturating_add(n);
        self.count += 1;
        add(&mut self.input, it.input_tokens.unwrap_or(0));
        add(&mut self.cache_read, it.cache_read_input_tokens.unwrap_or(0));
        add(&mut self.write_5m, write_5m);
        add(&mut self.write_1h, write_1h);
        add(&mut self.output, it.output_tokens.unwrap_or(0));
    }
}

/// Cache writes as `(5 min, 1 h)` from a total and its breakdown by TTL. Without a
/// breakdown every write is a 5 minute write (the API default). With one, the 1 h part is
/// taken as reported and the 5 min part is the larger of its own count and what the
/// total leaves over, so the buckets never bill less than either the total or the
/// breakdown says.
pub fn split_writes(total: u64, five_min: Option<u64>, one_hour: Option<u64>) -> (u64, u64) {
    if five_min.is_none() && one_hour.is_none() {
        return (total, 0);
    }
    let one_hour = one_hour.unwrap_or(0);
    (five_min.unwrap_or(0).max(total.saturating_sub(one_hour)), one_hour)
}

impl<'de> Fields<'de> for UsageObject {
    fn field<A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<(), A::Error> {
        match key {
            "input_tokens" => self.input_tokens = value::<Count, _>(map)?.0,
            "cache_read_input_tokens" => self.cache_read_input_tokens = value::<Count, _>(map)?.0,
            "cache_creation_input_tokens" => self.cache_creation_input_tokens = value::<Count, _>(map)?.0,
            "output_tokens" => self.output_tokens = value::<Count, _>(map)?.0,
            "cache_creation" => {
                let c = value::<Obj<CacheCreation>, _>(map)?.0.unwrap_or_default();
                (self.ephemeral_5m_input_tokens, self.ephemeral_1h_input_tokens) = (c.five_min, c.one_hour);
            }
            "server_tool_use" => {
                let t = value::<Obj<ServerToolUse>, _>(map)?.0.unwrap_or_default();
                (self.web_search_requests, self.web_fetch_requests) = (t.web_search, t.web_fetch);
            }
            "iterations" => self.iterations = value::<Seq<Iterations>, _>(map)?.0.filter(|i| i.count > 0),
            _ => skip(map)?,
        }
        Ok(())
    }
}

/// `usage.cache_creation`: the cache writes by TTL.
#[derive(Default)]
struct CacheCreation {
    five_min: Option<u64>,
    one_hour: Option<u64>,
}

impl<'de> Fields<'de> for CacheCreation {
    fn field<A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<(), A::Error> {
        match key {
            "ephemeral_5m_input_tokens" => self.five_min = value::<Count, _>(map)?.0,
            "ephemeral_1h_input_tokens" => self.one_hour = value::<Count, _>(map)?.0,
            _ => skip(map)?,
        }
        Ok(())
    }
}

/// `usage.server_tool_use`: server tool calls billed per request.
#[derive(Default)]
struct ServerToolUse {
    web_search: Option<u64>,
    web_fetch: Option<u64>,
}

impl<'de> Fields<'de> for ServerToolUse {
    fn field<A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<(), A::Error> {
        match key {
            "web_search_requests" => self.web_search = value::<Count, _>(map)?.0,
            "web_fetch_requests" => self.web_fetch = value::<Count, _>(map)?.0,
            _ => skip(map)?,
        }
        Ok(())
    }
}

/// Overwrites `slot` with `count`, when there is one.
fn update(slot: &mut u64, count: Option<u64>) {
    if let Some(n) = count {
        *slot = n;
    }
}

/// Like [`update`] for a count whose presence matters.
fn update_opt(slot: &mut Option<u64>, count: Option<u64>) {
    if count.is_some() {
        *slot = count;
    }
}

impl UsageFields {
    /// Folds in one `usage` object. Anything but a JSON object is ignored.
    pub fn merge(&mut self, usage: &Value) {
        if let Ok(Obj(Some(usage))) = Obj::<UsageObject>::deserialize(usage) {
            self.merge_object(&usage);
        }
    }

    /// Folds in one already-read `usage` object.
    pub fn merge_object(&mut self, usage: &UsageObject) {
        self.seen = true;
        match usage.iterations {
            Some(it) => {
                self.iterations = true;
                self.input = it.input;
                self.cache_read = it.cache_read;
                self.cache_creation = it.write_5m.saturating_add(it.write_1h);
                (self.ephemeral_5m, self.ephemeral_1h) = (Some(it.write_5m), Some(it.write_1h));
                self.output = it.output;
            }
            // The sums stand: a top-level count is only the last iteration's.
            None if self.iterations => {}
            None => {
                update(&mut self.input, usage.input_tokens);
                update(&mut self.cache_read, usage.cache_read_input_tokens);
                update(&mut self.cache_creation, usage.cache_creation_input_tokens);
                update_opt(&mut self.ephemeral_5m, usage.ephemeral_5m_input_tokens);
                update_opt(&mut self.ephemeral_1h, usage.ephemeral_1h_input_tokens);
                update(&mut self.output, usage.output_tokens);
            }
        }
        update(&mut self.web_search, usage.web_search_requests);
        update(&mut self.web_fetch, usage.web_fetch_requests);
    }

    /// Records the message's `model`, when it is a string.
    pub fn set_model(&mut self, message: &Value) {
        self.set_model_name(str_at(message, &["model"]));
    }

    /// Records a `model` read from a message, when there was one.
    pub fn set_model_name(&mut self, model: Option<&str>) {
        if let Some(model) = model {
            self.model = Some(model.to_owned());
        }
    }

    /// Cache writes as `(5 min, 1 h)` ([`split_writes`]).
    fn cache_writes(&self) -> (u64, u64) {
        split_writes(self.cache_creation, self.ephemeral_5m, self.ephemeral_1h)
    }

    /// The usage record, or `None` when no `usage` object was ever seen.
    pub fn to_usage(&self) -> Option<Usage> {
        if !self.seen {
            return None;
        }
        let (five_min, one_hour) = self.cache_writes();
        let mut usage = empty_usage();
        usage.input_uncached_tokens = self.input;
        usage.cache_read_tokens = self.cache_read;
        usage.cache_write_5m_tokens = five_min;
        usage.cache_write_1h_tokens = one_hour;
        usage.output_tokens = self.output;
        // Thinking tokens are inside `output_tokens` and not reported on their own.
        usage.reasoning_tokens = 0;
        for (name, count) in [(WEB_SEARCH_FEE, self.web_search), (WEB_FETCH_FEE, self.web_fetch)] {
            if count > 0 {
                usage.fees.push(Fee { name: name.to_owned(), count });
            }
        }
        usage.served_model = self.model.clone();
        Some(usage)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fold(objects: &[Value]) -> Option<Usage> {
        let mut fields = UsageFields::default();
        for o in objects {
            fields.merge(o);
        }
        fields.to_usage()
    }

    #[test]
    fn no_usage_object_means_none() {
        assert_eq!(fold(&[]), None);
        assert_eq!(fold(&[Value::Null, json!(3), json!("usage")]), None);
        assert!(fold(&[json!({})]).is_some());
    }

    #[test]
    fn later_fields_override_and_absent_or_null_fields_keep() {
        let u = fold(&[
            json!({"input_tokens": 10, "cache_read_input_tokens": 5, "output_tokens": 1}),
            json!({"output_tokens": 70, "cache_read_input_tokens": null}),
        ])
        .unwrap();
        assert_eq!((u.input_uncached_tokens, u.cache_read_tokens, u.output_tokens), (10, 5, 70));
    }

    #[test]
    fn cache_writes_without_breakdown_are_five_minute() {
        let u = fold(&[json!({"cache_creation_input_tokens": 900})]).unwrap();
        assert_eq!((u.cache_write_5m_tokens, u.cache_write_1h_tokens), (900, 0));
    }

    #[test]
    fn cache_writes_follow_the_breakdown() {
        let split = json!({"cache_creation_input_tokens": 900, "cache_creation": {"ephemeral_5m_input_tokens": 300, "ephemeral_1h_input_tokens": 600}});
        let u = fold(std::slice::from_ref(&split)).unwrap();
        assert_eq!((u.cache_write_5m_tokens, u.cache_write_1h_tokens), (300, 600));
        // A later total without a breakdown keeps the split of the earlier one.
        let u = fold(&[split, json!({"cache_creation_input_tokens": 900})]).unwrap();
        assert_eq!((u.cache_write_5m_tokens, u.cache_write_1h_tokens), (300, 600));
    }

    #[test]
    fn inconsistent_breakdowns_never_bill_less_than_either_side() {
        // Total above the breakdown: the unexplained rest is billed as 5 min writes.
        let u =
            fold(&[json!({"cache_creation_input_tokens": 1000, "cache_creation": {"ephemeral_1h_input_tokens": 600}})])
                .unwrap();
        assert_eq!((u.cache_write_5m_tokens, u.cache_write_1h_tokens), (400, 600));
        // Breakdown above the total: the breakdown wins.
        let u = fold(&[json!({"cache_creation_input_tokens": 10, "cache_creation": {"ephemeral_5m_input_tokens": 20, "ephemeral_1h_input_tokens": 30}})]).unwrap();
        assert_eq!((u.cache_write_5m_tokens, u.cache_write_1h_tokens), (20, 30));
    }

    #[test]
    fn server_tools_become_fees_only_when_used() {
        let u = fold(&[json!({"server_tool_use": {"web_search_requests": 0, "web_fetch_requests": 0}})]).unwrap();
        assert!(u.fees.is_empty());
        let u = fold(&[json!({"server_tool_use": {"web_search_requests": 3, "web_fetch_requests": 2}})]).unwrap();
        assert_eq!(
            u.fees,
            vec![Fee { name: "web_search".into(), count: 3 }, Fee { name: "web_fetch".into(), count: 2 }]
        );
    }

    #[test]
    fn iterations_are_summed_and_their_sums_stand() {
        let compacted = json!({"input_tokens": 23000, "output_tokens": 1000, "cache_read_input_tokens": 0,
        "server_tool_use": {"web_search_requests": 1},
        "iterations": [
            {"type": "compaction", "input_tokens": 180000, "output_tokens": 3500, "cache_read_input_tokens": 2000,
             "cache_creation_input_tokens": 900, "cache_creation": {"ephemeral_1h_input_tokens": 600}},
            {"type": "message", "input_tokens": 23000, "output_tokens": 1000, "cache_creation_input_tokens": 50},
            "not an iteration"
        ]});
        let u = fold(&[json!({"input_tokens": 180000, "output_tokens": 1}), compacted.clone()]).unwrap();
        assert_eq!((u.input_uncached_tokens, u.cache_read_tokens, u.output_tokens), (203_000, 2000, 4500));
        assert_eq!((u.cache_write_5m_tokens, u.cache_write_1h_tokens), (300 + 50, 600));
        assert_eq!(u.fees, vec![Fee { name: "web_search".into(), count: 1 }]);
        // A later object without iterations (the last iteration's counts) does not undo the sums.
        let again = fold(&[compacted, json!({"input_tokens": 23000, "output_tokens": 1000})]).unwrap();
        assert_eq!(again, u);
        // An empty or malformed `iterations` is no iterations: the top-level counts apply.
        for it in [json!([]), json!({}), json!("x")] {
            let u = fold(&[json!({"input_tokens": 5, "output_tokens": 2, "iterations": it})]).unwrap();
            assert_eq!((u.input_uncached_tokens, u.output_tokens), (5, 2));
        }
    }

    #[test]
    fn nonsense_counts_are_ignored() {
        let u = fold(&[json!({"input_tokens": -5, "output_tokens": 1.5, "cache_read_input_tokens": "7"})]).unwrap();
        assert_eq!((u.input_uncached_tokens, u.output_tokens, u.cache_read_tokens), (0, 0, 0));
        let u = fold(&[json!({"input_tokens": u64::MAX, "cache_read_input_tokens": u64::MAX})]).unwrap();
        assert_eq!(xjp_plugin_sdk::prompt_tokens(&u), u64::MAX);
    }
}
