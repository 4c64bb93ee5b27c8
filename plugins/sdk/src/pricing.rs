//! Exact pricing: usage x atto-USD rates, `i128` intermediates, one half-up rounding.

use crate::{Cost, PluginError, PriceEntry, TokenRates, Usage, prompt_tokens};

/// The fee that applies once to every request when the price lists it.
pub const PER_REQUEST_FEE: &str = "request";

fn mul(tokens: u64, rate: u64) -> Result<i128, PluginError> {
    // A product below 2^64 needs no 128-bit multiply (a library call on wasm32).
    if tokens.leading_zeros() + rate.leading_zeros() >= u64::BITS {
        return Ok(i128::from(tokens * rate));
    }
    i128::from(tokens).checked_mul(i128::from(rate)).ok_or(PluginError::Overflow)
}

/// Rounds atto-USD to nano-USD, half up.
pub fn round_atto_to_nano(atto: i128) -> Result<i64, PluginError> {
    const HALF: u64 = 500_000_000;
    const ATTO_PER_NANO: u64 = 1_000_000_000;
    // Amounts in `0..2^64` (up to ~18 USD) round with one 64-bit division instead of
    // 128-bit ones, with the same result as `xjp_money::atto_to_nano_half_up`.
    if let Ok(atto) = u64::try_from(atto)
        && let Some(up) = atto.checked_add(HALF)
    {
        return Ok((up / ATTO_PER_NANO) as i64);
    }
    xjp_money::atto_to_nano_half_up(atto).ok_or(PluginError::Overflow)
}

/// The rates that apply to this usage: the long-context tier applies to the whole
/// request once prompt-side tokens exceed its threshold.
pub fn applicable_rates<'a>(usage: &Usage, price: &'a PriceEntry) -> (&'a TokenRates, bool) {
    match &price.long_context {
        Some(tier) if prompt_tokens(usage) > tier.threshold_tokens => (&tier.rates, true),
        _ => (&price.rates, false),
    }
}

/// Prices usage. Every fee the usage reports must have a rate (an unpriced fee is an
/// error, never free); the `request` fee, when priced, applies once.
pub fn price(usage: &Usage, price: &PriceEntry) -> Result<Cost, PluginError> {
    let (rates, long_context_applied) = applicable_rates(usage, price);
    let input = mul(usage.input_uncached_tokens, rates.input)?;
    let cache_read = mul(usage.cache_read_tokens, rates.cache_read)?;
    let write_5m = mul(usage.cache_write_5m_tokens, rates.cache_write_5m)?;
    let write_1h = mul(usage.cache_write_1h_tokens, rates.cache_write_1h)?;
    let reasoning = usage.reasoning_tokens.min(usage.output_tokens);
    let output = match rates.reasoning {
        Some(r) => mul(usage.output_tokens - reasoning, rates.output)?
            .checked_add(mul(reasoning, r)?)
            .ok_or(PluginError::Overflow)?,
        None => mul(usage.output_tokens, rates.output)?,
    };
    let mut fees: i128 = 0;
    for fee in &usage.fees {
        let rate = price
            .fees
            .iter()
            .find(|r| r.name == fee.name)
            .ok_or_else(|| PluginError::Other(format!("no price for fee `{}`", fee.name)))?;
        fees = fees.checked_add(mul(fee.count, rate.atto_usd_per_unit)?).ok_or(PluginError::Overflow)?;
    }
    if !usage.fees.iter().any(|f| f.name == PER_REQUEST_FEE)
        && let Some(r) = price.fees.iter().find(|r| r.name == PER_REQUEST_FEE)
    {
        fees = fees.checked_add(i128::from(r.atto_usd_per_unit)).ok_or(PluginError::Overflow)?;
    }
    let total = [input, cache_read, write_5m, write_1h, output, fees]
        .into_iter()
        .try_fold(0i128, i128::checked_add)
        .ok_or(PluginError::Overflow)?;
    Ok(Cost {
        input_uncached: round_atto_to_nano(input)?,
        cache_read: round_atto_to_nano(cache_read)?,
        cache_write_5m: round_atto_to_nano(write_5m)?,
        cache_write_1h: round_atto_to_nano(write_1h)?,
        output: round_atto_to_nano(output)?,
        fees: round_atto_to_nano(fees)?,
        total: round_atto_to_nano(total)?,
        long_context_applied,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Fee, FeeRate, LongContextTier, empty_usage};

    /// USD per million tokens -> atto-USD per token (x 1e12).
    fn per_m(usd_per_m_micro: u64) -> u64 {
        usd_per_m_micro * 1_000_000
    }

    fn rates(input: u64, output: u64) -> TokenRates {
        TokenRates {
            input: per_m(input),
            output: per_m(output),
            cache_read: per_m(input / 10),
            cache_write_5m: per_m(input * 5 / 4),
            cache_write_1h: per_m(input * 2),
            reasoning: None,
        }
    }

    #[test]
    fn prices_every_bucket_exactly() {
        // $3 / $15 per million (in micro-USD per million: 3_000_000 / 15_000_000).
        let price = PriceEntry { rates: rates(3_000_000, 15_000_000), long_context: None, fees: vec![] };
        let mut u = empty_usage();
        u.input_uncached_tokens = 1000;
        u.cache_read_tokens = 2000;
        u.cache_write_5m_tokens = 100;
        u.cache_write_1h_tokens = 10;
        u.output_tokens = 500;
        let c = price_of(&u, &price);
        assert_eq!(c.input_uncached, 3_000_000); // 1000 * $3e-6
        assert_eq!(c.cache_read, 600_000); // 2000 * $0.3e-6
        assert_eq!(c.cache_write_5m, 375_000); // 100 * $3.75e-6
        assert_eq!(c.cache_write_1h, 60_000); // 10 * $6e-6
        assert_eq!(c.output, 7_500_000);
        assert_eq!(c.total, 11_535_000);
    }

    fn price_of(u: &Usage, p: &PriceEntry) -> Cost {
        price(u, p).unwrap()
    }

    #[test]
    fn long_context_tier_applies_to_whole_request() {
        let price = PriceEntry {
            rates: rates(3_000_000, 15_000_000),
            long_context: Some(LongContextTier { threshold_tokens: 200_000, rates: rates(6_000_000, 22_500_000) }),
            fees: vec![],
        };
        let mut u = empty_usage();
        u.input_uncached_tokens = 200_000;
        u.output_tokens = 1;
        assert!(!price_of(&u, &price).long_context_applied);
        u.input_uncached_tokens = 199_000;
        u.cache_read_tokens = 1_001;
        let c = price_of(&u, &price);
        assert!(c.long_context_applied);
        assert_eq!(c.input_uncached, 199_000 * 6_000);
        assert_eq!(c.output, 22_500);
    }

    #[test]
    fn fees_reasoning_rate_and_rounding() {
        let mut r = rates(1, 1); // $0.000001 per million -> 1e-3 nano per token
        r.reasoning = Some(per_m(2));
        let entry = PriceEntry {
            rates: r,
            long_context: None,
            fees: vec![
                FeeRate { name: "web_search".into(), atto_usd_per_unit: 10_000_000_000_000_000 },
                FeeRate { name: "request".into(), atto_usd_per_unit: 1_000_000_000 },
            ],
        };
        let mut u = empty_usage();
        u.output_tokens = 1000;
        u.reasoning_tokens = 400;
        u.input_uncached_tokens = 499;
        u.fees = vec![Fee { name: "web_search".into(), count: 2 }];
        let c = price_of(&u, &entry);
        assert_eq!(c.fees, 20_000_001); // 2 x $0.01 + $0.000000001 request fee
        assert_eq!(c.output, 1); // 600*1e-3 + 400*2e-3 = 1.4 -> 1
        assert_eq!(c.input_uncached, 0); // 0.499 -> 0
        assert_eq!(c.total, 20_000_003); // 20_000_001 + 1.4 + 0.499 = ...2.899 -> 3
        u.fees = vec![Fee { name: "image".into(), count: 1 }];
        assert!(matches!(price(&u, &entry), Err(PluginError::Other(_))));
    }

    #[test]
    fn fast_paths_agree_with_the_general_arithmetic() {
        let edges = [0, 1, 2, 3, 499_999_999, 500_000_000, 999_999_999, 1 << 31, 1 << 32, u32::MAX as u64 + 1];
        let big = [1 << 40, 1 << 63, u64::MAX / 3, u64::MAX - 500_000_000, u64::MAX - 499_999_999, u64::MAX];
        for &a in edges.iter().chain(&big) {
            for &b in edges.iter().chain(&big) {
                let general = i128::from(a).checked_mul(i128::from(b)).ok_or(PluginError::Overflow);
                assert_eq!(mul(a, b), general, "{a} x {b}");
            }
            for atto in [i128::from(a), i128::from(a) + i128::from(u64::MAX), -i128::from(a), i128::MAX - i128::from(a)]
            {
                let general = xjp_money::atto_to_nano_half_up(atto).ok_or(PluginError::Overflow);
                assert_eq!(round_atto_to_nano(atto), general, "{atto}");
            }
        }
    }

    #[test]
    fn overflow_is_an_error() {
        let mut r = rates(0, 0);
        r.input = u64::MAX;
        let entry = PriceEntry { rates: r, long_context: None, fees: vec![] };
        let mut u = empty_usage();
        u.input_uncached_tokens = u64::MAX;
        assert_eq!(price(&u, &entry), Err(PluginError::Overflow));
    }
}
