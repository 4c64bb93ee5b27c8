//! Phases 7 and 8, settle and record: price the real usage, make the transaction row
//! durable (ledger spool), then turn the hold into the debit in Redis. Runs after the
//! response, never delaying it. Requests refused after authentication get a row too.

use super::Billing;
use super::bill::Bill;
use super::ending::{Ending, Verdict};
use super::record::{Charged, row};
use crate::ledger::recount::Debit;
use crate::plugins::PluginCallError;
use std::time::Duration;

/// Prices, records and settles one ended request.
pub(super) async fn settle_and_record(billing: &Billing, bill: Bill, ending: Ending, latency: Duration) {
    if let Ending::Refused(refusal) = ending {
        let verdict = Verdict::of(&bill, Ending::Refused(refusal), &billing.settings.load().config.billing);
        let r = row(&bill, &verdict, Charged { cost_nano: 0, pricing_failed: false, over_hold: false, latency: None });
        r.log_access();
        if let Err(e) = billing.ledger.record_final(r).await {
            tracing::error!(error = %e, "ledger refused a rejection row");
        }
        // A refusal normally holds nothing; if it did, the hold goes back.
        settle(billing, &bill, 0).await;
        billing.running.remove(bill.caller.tenant_id, &bill.request_id);
        return;
    }
    let mut verdict = Verdict::of(&bill, ending, &billing.settings.load().config.billing);
    let hold = bill.hold();
    // Price is a function of (usage, price): the cost priced with the extraction holds
    // whenever the verdict bills the usage exactly as extracted.
    let cost = match (verdict.cost.take(), &bill.routed) {
        (Some(cost), _) => Some(cost.map_err(PluginCallError::Plugin)),
        (None, Some(routed)) => Some(routed.plugin.price(&verdict.usage, &routed.price)),
        (None, None) => None,
    };
    // A cost over what the balance scripts hold exactly (a provider reporting absurd usage)
    // is capped there, and the row flagged (with or without a hold).
    let capped = matches!(&cost, Some(Ok(c)) if c.total > xjp_money::MAX_EXACT_NANO);
    let (cost_nano, pricing_failed) = match cost {
        Some(Ok(c)) => (c.total.clamp(0, xjp_money::MAX_EXACT_NANO), false),
        None => (0, false),
        // Pricing failed: charge the reserved upper bound and flag the row.
        Some(Err(e)) => {
            tracing::error!(request_id = %bill.request_id, error = %e, "pricing failed; charging the estimate");
            (hold.map(|h| h.amount_nano).unwrap_or(0), true)
        }
    };
    // The output cap keeps token costs within the hold; what the provider still bills
    // beyond it (per-call fees the estimate could not bound) is debited and flagged.
    let over_hold = hold.map_or(0, |h| cost_nano.saturating_sub(h.amount_nano)).max(0);
    if over_hold > 0 {
        metrics::counter!("xjp_billed_over_hold_total").increment(1);
        metrics::counter!("xjp_billed_over_hold_nano_usd_total").increment(over_hold as u64);
        tracing::warn!(request_id = %bill.request_id, over_hold, "billed more than the hold; flagged for review");
    }
    let charged = Charged { cost_nano, pricing_failed, over_hold: over_hold > 0 || capped, latency: Some(latency) };
    let r = row(&bill, &verdict, charged);
    r.log_access();
    metrics::counter!("xjp_billed_nano_usd_total").increment(cost_nano as u64);
    if let Err(e) = billing.ledger.record(r).await {
        tracing::error!(request_id = %bill.request_id, error = %e, "ledger refused the row");
    }
    let tenant = bill.caller.tenant_id;
    let debit = settle(billing, &bill, cost_nano).await;
    billing.running.remove(tenant, &bill.request_id);
    billing.ledger.confirm(tenant, &bill.request_id, debit).await;
}

/// Turns the hold into the debit, retrying briefly; if Redis stays down the debit is
/// registered as unrecorded and resynced when Redis returns (`resync`). Returns the debit
/// when it is accounted for (applied, or registered), which the ledger's confirmation needs,
/// with the account epoch it was applied under when Redis answered.
/// A request held from a lease settles against the lease's hold; one that cost nothing only
/// frees its part of the lease here.
async fn settle(billing: &Billing, bill: &Bill, cost: i64) -> Option<Debit> {
    let (tenant, request_id) = (bill.caller.tenant_id, bill.request_id.as_str());
    let hold = bill.hold();
    if hold.is_none() && cost == 0 {
        return None;
    }
    let balances = &billing.balances;
    let leased = hold.and_then(|h| h.lease.map(|lease| (lease, h.amount_nano)));
    if let (Some((lease, held)), 0) = (leased, cost) {
        balances.leases.settled(tenant, lease, held, 0);
        return Some(Debit { cost, epoch: None });
    }
    let label = if cost > 0 { "settled" } else { "released" };
    let mut delay = Duration::from_millis(50);
    let mut accounted = None;
    let lease = leased.map(|(lease, _)| lease);
    for attempt in 0..4 {
        // Every try is sent as a resend: after a try that failed, Redis may have applied it
        // and lost only the answer, and the Redis client itself resends a call whose answer
        // it lost (the cluster client's retries). Found settled, the debit is this request's
        // own: nothing else settles an id while its request settles (the sweeper settles
        // only ids whose rows are in Postgres, which they are once this has returned; the
        // reserve refuses an id in flight).
        match balances.settle_from(tenant, request_id, bill.id_origin(), cost, label, false, lease, true).await {
            Ok(super::Settlement::Settled { epoch, .. }) => {
                accounted = Some(Debit { cost, epoch });
                break;
            }
            Ok(super::Settlement::AlreadySettled) => break,
            Err(e) if attempt == 3 => {
                tracing::error!(request_id, error = %e, "could not settle in Redis; resyncing when it returns");
                balances.settle_failed(tenant, cost).await;
                billing.resyncs.push(tenant, request_id, cost, leased);
                // The resync frees the lease's unused part once it took the cost out.
                return Some(Debit { cost, epoch: None });
            }
            Err(_) => {
                tokio::time::sleep(delay).await;
                delay *= 4;
            }
        }
    }
    // After Redis took the cost out of the lease's hold (never before: an account rebuilt in
    // between would hold the lease again without it).
    if let Some((lease, held)) = leased {
        balances.leases.settled(tenant, lease, held, cost);
    }
    accounted
}
