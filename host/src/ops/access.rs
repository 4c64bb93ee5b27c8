//! The access line: one `info` event per settled request, target [`ACCESS_TARGET`], and the
//! per-model and per-provider spend counters derived from it.
//!
//! The request settles in `billing` (below this module, so it cannot call into `ops`). It
//! emits the line with [`TransactionRow::log_access`](crate::ledger::TransactionRow::log_access) (in the ledger, below billing) once per
//! transaction row, refusals included.
//!
//! [`SpendLayer`], installed with the log subscriber (`ops::telemetry`), turns every such
//! event into counters, whatever the log filter says:
//!
//! | metric | labels | what |
//! |---|---|---|
//! | `xjp_spend_nano_usd_total` | `provider`, `model` | nano-USD billed |
//! | `xjp_settled_requests_total` | `provider`, `model`, `status` | requests settled |
//! | `xjp_settled_tokens_total` | `provider`, `model`, `kind` (`input`, `output`) | tokens billed |
//!
//! Labels stay bounded: `model` is the configured public name a request was routed by; a
//! request that was never routed (no provider: an unknown model, a refusal before routing)
//! is counted under `provider="none", model="none"`, since its model name is the client's.

use crate::ledger::row::ACCESS_TARGET;
use crate::proxy::metric_handles::KeptHandles;
use metrics::{Counter, Label};
use std::cell::RefCell;
use std::fmt::{Debug, Write as _};
use std::sync::Arc;
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;

/// The fields of an access event the counters need (one per thread, reused: no allocation
/// per event once its strings have grown).
#[derive(Debug, Default)]
struct Spend {
    /// (provider, model, status): the counters' key.
    key: (String, String, String),
    cost_nano: i64,
    input_tokens: i64,
    output_tokens: i64,
}

impl Spend {
    fn slot(&mut self, field: &Field) -> Option<&mut String> {
        match field.name() {
            "provider" => Some(&mut self.key.0),
            "model" => Some(&mut self.key.1),
            "status" => Some(&mut self.key.2),
            _ => None,
        }
    }

    fn clear(&mut self) {
        [&mut self.key.0, &mut self.key.1, &mut self.key.2].into_iter().for_each(String::clear);
        (self.cost_nano, self.input_tokens, self.output_tokens) = (0, 0, 0);
    }
}

impl Visit for Spend {
    fn record_str(&mut self, field: &Field, value: &str) {
        if let Some(slot) = self.slot(field) {
            slot.clear();
            slot.push_str(value);
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        match field.name() {
            "cost_nano" => self.cost_nano = value,
            "input_tokens" => self.input_tokens = value,
            "output_tokens" => self.output_tokens = value,
            _ => {}
        }
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.record_i64(field, i64::try_from(value).unwrap_or(i64::MAX));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn Debug) {
        // `%value` fields arrive here (Display through Debug).
        if let Some(slot) = self.slot(field) {
            slot.clear();
            let _ = write!(slot, "{value:?}");
        }
    }
}

thread_local! {
    static SPEND: RefCell<Spend> = RefCell::new(Spend::default());
}

/// The spend counters of one (provider, model, status).
struct SpendCounters {
    spend: Counter,
    requests: Counter,
    input: Counter,
    output: Counter,
}

impl SpendCounters {
    fn new(provider: &str, model: &str, status: &str) -> Self {
        let labels = [Label::new("provider", provider.to_string()), Label::new("model", model.to_string())];
        let with = |name: &'static str, value: String| {
            labels.iter().cloned().chain([Label::new(name, value)]).collect::<Vec<_>>()
        };
        SpendCounters {
            spend: metrics::counter!("xjp_spend_nano_usd_total", labels.to_vec()),
            requests: metrics::counter!("xjp_settled_requests_total", with("status", status.to_string())),
            input: metrics::counter!("xjp_settled_tokens_total", with("kind", "input".into())),
            output: metrics::counter!("xjp_settled_tokens_total", with("kind", "output".into())),
        }
    }
}

/// Counts access events into the spend metrics (see the module docs), through handles kept
/// per (provider, model, status): one atomic add per counter instead of building labels and
/// looking them up in the recorder's registry on every request.
#[derive(Default, Clone)]
pub struct SpendLayer {
    kept: Arc<KeptHandles<(String, String, String), SpendCounters>>,
}

impl std::fmt::Debug for SpendLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpendLayer").field("kept", &self.kept.len()).finish()
    }
}

impl SpendLayer {
    /// Counts one access event's fields.
    fn count(&self, spend: &mut Spend) {
        if spend.key.0.is_empty() {
            spend.key.0.push_str("none");
            spend.key.1.clear();
            spend.key.1.push_str("none");
        }
        let key = &spend.key;
        let make = || SpendCounters::new(&key.0, &key.1, &key.2);
        self.kept.with(
            key,
            || key.clone(),
            make,
            |c| {
                c.spend.increment(spend.cost_nano.max(0) as u64);
                c.requests.increment(1);
                c.input.increment(spend.input_tokens.max(0) as u64);
                c.output.increment(spend.output_tokens.max(0) as u64);
            },
        );
    }
}

impl<S: Subscriber> Layer<S> for SpendLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        if event.metadata().target() != ACCESS_TARGET {
            return;
        }
        SPEND.with_borrow_mut(|spend| {
            spend.clear();
            event.record(spend);
            self.count(spend);
        });
    }
}

/// The filter the spend layer runs under: access events only, whatever the log filter.
pub fn spend_filter() -> tracing_subscriber::filter::Targets {
    tracing_subscriber::filter::Targets::new().with_target(ACCESS_TARGET, tracing::Level::INFO)
}

/// For a gateway run in-process (tests, embedding) without `ops::telemetry`: installs a
/// global subscriber that only counts access lines into the spend metrics. Does nothing when
/// a global subscriber is already set.
pub fn install_spend_counters() {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let _ = tracing_subscriber::registry().with(SpendLayer::default().with_filter(spend_filter())).try_init();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::TransactionRow;
    use tracing_subscriber::layer::SubscriberExt;

    fn row(provider: Option<&str>, model: &str, cost_nano: i64) -> TransactionRow {
        let mut row = crate::ledger::spool::tests::row(cost_nano);
        (row.provider, row.model_requested) = (provider.map(String::from), model.into());
        (row.input_uncached_tokens, row.cache_read_tokens, row.output_tokens) = (10, 5, 7);
        row
    }

    fn sample(text: &str, name_and_labels: &str) -> Option<f64> {
        text.lines().find_map(|l| l.strip_prefix(name_and_labels)?.trim().parse().ok())
    }

    #[test]
    fn access_events_become_spend_counters() {
        let handle = crate::ops::install_metrics();
        let subscriber = tracing_subscriber::registry().with(SpendLayer::default().with_filter(spend_filter()));
        tracing::subscriber::with_default(subscriber, || {
            row(Some("openai"), "gpt-4o-mini", 1_500).log_access();
            row(Some("openai"), "gpt-4o-mini", 500).log_access();
            row(None, "whatever-a-client-sent", 0).log_access();
            // Another target with the same fields is not an access line.
            tracing::info!(provider = "openai", model = "gpt-4o-mini", cost_nano = 9_i64, "not access");
        });
        let text = handle.render();
        let spend = sample(&text, r#"xjp_spend_nano_usd_total{provider="openai",model="gpt-4o-mini"}"#);
        assert_eq!(spend, Some(2_000.0), "{text}");
        let n = sample(&text, r#"xjp_settled_requests_total{provider="openai",model="gpt-4o-mini",status="ok"}"#);
        assert_eq!(n, Some(2.0), "{text}");
        let input = sample(&text, r#"xjp_settled_tokens_total{provider="openai",model="gpt-4o-mini",kind="input"}"#);
        assert_eq!(input, Some(30.0), "{text}");
        let unrouted = sample(&text, r#"xjp_settled_requests_total{provider="none",model="none",status="ok"}"#);
        assert_eq!(unrouted, Some(1.0), "{text}");
        assert!(!text.contains("whatever-a-client-sent"), "a client's model name is never a label");
    }
}
