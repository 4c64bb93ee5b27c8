//! Exact money: decimal text <-> nano-USD amounts and atto-USD rates, no floating point.
//!
//! Amounts are `i64` nano-USD (1e-9 USD). Rates are `u64` atto-USD per unit (1e-18 USD),
//! which for tokens is the same number as pico-USD per million tokens, so every price a
//! provider publishes (`"0.0000000375"` per token) is an exact integer.

/// The largest amount the balance scripts hold exactly, either sign: 2^53 - 1 nano-USD (about
/// $9 million). Redis's Lua scripts compute with doubles, exact up to 2^53, and write numbers
/// of 1e17 and more in exponent form, which Redis refuses as an integer.
pub const MAX_EXACT_NANO: i64 = (1 << 53) - 1;

/// Parses a decimal USD amount (`"0.000924"`, `"1.05e-5"`, `"-2"`) to nano-USD,
/// rounding half away from zero at the ninth decimal. `None` when not a number or
/// out of range.
pub fn usd_to_nano(text: &str) -> Option<i64> {
    let text = text.trim();
    let (negative, body) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let v = i64::try_from(parse_scaled(body, 9)?).ok()?;
    Some(if negative { -v } else { v })
}

/// Formats nano-USD as a decimal string with trailing zeros trimmed (`924000` -> `"0.000924"`).
pub fn nano_to_usd(nano: i64) -> String {
    let sign = if nano < 0 { "-" } else { "" };
    let abs = nano.unsigned_abs();
    let int = abs / 1_000_000_000;
    let frac = abs % 1_000_000_000;
    if frac == 0 {
        return format!("{sign}{int}");
    }
    let frac = format!("{frac:09}");
    format!("{sign}{int}.{}", frac.trim_end_matches('0'))
}

/// A non-negative decimal as its significant digits (no leading zeros) × 10^power.
struct Decimal {
    digits: String,
    power: i64,
}

/// Parses plain or exponent notation (`"0.075"`, `"1.5e-05"`, `"+3"`); `None` for anything else.
fn parse_decimal(text: &str) -> Option<Decimal> {
    let body = text.trim();
    let body = body.strip_prefix('+').unwrap_or(body);
    let (mantissa, exp) = match body.find(['e', 'E']) {
        Some(i) => (&body[..i], body[i + 1..].parse::<i64>().ok()?),
        None => (body, 0),
    };
    let (int_part, frac_part) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if int_part.is_empty() && frac_part.is_empty() {
        return None;
    }
    if !int_part.bytes().chain(frac_part.bytes()).all(|b| b.is_ascii_digit()) {
        return None;
    }
    let digits = format!("{int_part}{frac_part}").trim_start_matches('0').to_string();
    let power = exp.checked_sub(i64::try_from(frac_part.len()).ok()?)?;
    Some(Decimal { digits, power })
}

/// Parses a decimal number exactly and scales it by `10^scale`, rounding half up;
/// `None` when not a non-negative decimal or out of range. Shared by the converters below.
fn parse_scaled(text: &str, scale: i32) -> Option<i128> {
    let Decimal { digits, power } = parse_decimal(text)?;
    let shift = power.checked_add(i64::from(scale))?;
    if digits.is_empty() {
        return Some(0);
    }
    if shift >= 0 {
        let d: i128 = digits.parse().ok()?;
        return d.checked_mul(10i128.checked_pow(u32::try_from(shift).ok()?)?);
    }
    let drop = usize::try_from(-shift).ok()?;
    if drop > digits.len() {
        return Some(0);
    }
    let (keep, dropped) = digits.split_at(digits.len() - drop);
    let base: i128 = if keep.is_empty() { 0 } else { keep.parse().ok()? };
    Some(base + i128::from(dropped.as_bytes()[0] >= b'5'))
}

/// USD per token (`"0.000003"`) -> atto-USD per token, exact (rounded half up below 1e-18).
pub fn usd_per_token_to_atto(text: &str) -> Option<u64> {
    u64::try_from(parse_scaled(text, 18)?).ok()
}

/// USD per million tokens (`"3"`, `"0.075"`) -> atto-USD per token, exact.
pub fn usd_per_million_to_atto(text: &str) -> Option<u64> {
    u64::try_from(parse_scaled(text, 12)?).ok()
}

/// USD per unit (`"0.01"` per search) -> atto-USD per unit, exact.
pub fn usd_per_unit_to_atto(text: &str) -> Option<u64> {
    usd_per_token_to_atto(text)
}

/// USD per token as decimal text (`"3e-06"`, `"0.0000000375"`) -> USD per million tokens as
/// plain decimal text (`"3"`, `"0.0375"`), exact: the decimal point moves six places, no
/// rounding, no exponent, no superfluous zeros. `None` when not a non-negative decimal.
pub fn per_token_to_per_million_text(text: &str) -> Option<String> {
    shift_decimal(text, 6)
}

/// Non-negative decimal text (`"1e-02"`, `"0.0100"`) in plain notation (`"0.01"`), exact.
/// `None` when not a non-negative decimal.
pub fn plain_decimal_text(text: &str) -> Option<String> {
    shift_decimal(text, 0)
}

/// Multiplies non-negative decimal text by `10^places` exactly and prints it in plain
/// notation. Exponents beyond ±`MAX_SHIFT` are refused rather than expanded.
fn shift_decimal(text: &str, places: i32) -> Option<String> {
    const MAX_SHIFT: i64 = 400;
    let Decimal { digits, power } = parse_decimal(text)?;
    if digits.is_empty() {
        return Some("0".to_string());
    }
    let significant = digits.trim_end_matches('0');
    let power =
        power.checked_add(i64::from(places))?.checked_add(i64::try_from(digits.len() - significant.len()).ok()?)?;
    if !(-MAX_SHIFT..=MAX_SHIFT).contains(&power) {
        return None;
    }
    if power >= 0 {
        return Some(format!("{significant}{}", "0".repeat(usize::try_from(power).ok()?)));
    }
    let frac_len = usize::try_from(-power).ok()?;
    Some(if frac_len >= significant.len() {
        format!("0.{}{significant}", "0".repeat(frac_len - significant.len()))
    } else {
        let (int, frac) = significant.split_at(significant.len() - frac_len);
        format!("{int}.{frac}")
    })
}

/// Rounds atto-USD to nano-USD, half up (toward +infinity on .5).
pub fn atto_to_nano_half_up(atto: i128) -> Option<i64> {
    const ATTO_PER_NANO: i128 = 1_000_000_000;
    i64::try_from((atto.checked_add(ATTO_PER_NANO / 2)?).div_euclid(ATTO_PER_NANO)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_rates_exactly() {
        assert_eq!(usd_per_million_to_atto("3"), Some(3_000_000_000_000));
        assert_eq!(usd_per_million_to_atto("0.075"), Some(75_000_000_000));
        assert_eq!(usd_per_token_to_atto("0.0000000375"), Some(37_500_000_000));
        assert_eq!(usd_per_token_to_atto("3e-6"), Some(3_000_000_000_000));
        assert_eq!(usd_per_token_to_atto("-1"), None);
        assert_eq!(usd_per_unit_to_atto("0.01"), Some(10_000_000_000_000_000));
        assert_eq!(atto_to_nano_half_up(1_499_999_999), Some(1));
        assert_eq!(atto_to_nano_half_up(1_500_000_000), Some(2));
    }

    #[test]
    fn parses_exactly() {
        assert_eq!(usd_to_nano("0.000924"), Some(924_000));
        assert_eq!(usd_to_nano("1.05e-5"), Some(10_500));
        assert_eq!(usd_to_nano("3"), Some(3_000_000_000));
        assert_eq!(usd_to_nano("-0.5"), Some(-500_000_000));
        assert_eq!(usd_to_nano("0.0000000015"), Some(2));
        assert_eq!(usd_to_nano("0.0000000014"), Some(1));
        assert_eq!(usd_to_nano("0.0000000005"), Some(1));
        assert_eq!(usd_to_nano("0.00000000049"), Some(0));
        assert_eq!(usd_to_nano("5e-10"), Some(1));
        assert_eq!(usd_to_nano("4e-11"), Some(0));
        assert_eq!(usd_to_nano("0"), Some(0));
        assert_eq!(usd_to_nano("abc"), None);
        assert_eq!(usd_to_nano(""), None);
        assert_eq!(usd_to_nano("1e30"), None);
    }

    #[test]
    fn shifts_per_token_to_per_million_exactly() {
        let per_million = per_token_to_per_million_text;
        assert_eq!(per_million("3e-06").as_deref(), Some("3"));
        assert_eq!(per_million("3e-6").as_deref(), Some("3"));
        assert_eq!(per_million("1.5e-05").as_deref(), Some("15"));
        assert_eq!(per_million("7.5e-08").as_deref(), Some("0.075"));
        assert_eq!(per_million("2.25e-05").as_deref(), Some("22.5"));
        assert_eq!(per_million("3.75E-6").as_deref(), Some("3.75"));
        assert_eq!(per_million("0.0000000375").as_deref(), Some("0.0375"));
        assert_eq!(per_million("0.000003").as_deref(), Some("3"));
        assert_eq!(per_million("1.25e-7").as_deref(), Some("0.125"));
        assert_eq!(per_million("4.4000000000000006e-06").as_deref(), Some("4.4000000000000006"));
        assert_eq!(per_million("1e-20").as_deref(), Some("0.00000000000001"));
        assert_eq!(per_million("2").as_deref(), Some("2000000"));
        assert_eq!(per_million("1e+2").as_deref(), Some("100000000"));
        assert_eq!(per_million("0.10").as_deref(), Some("100000"));
        assert_eq!(per_million("000.000001000").as_deref(), Some("1"));
        assert_eq!(per_million("0").as_deref(), Some("0"));
        assert_eq!(per_million("0.0").as_deref(), Some("0"));
        assert_eq!(per_million("0e-300").as_deref(), Some("0"));
        for bad in
            ["", "-3e-06", "abc", "1e", "e-6", ".", "1.2.3", "\"3e-06\"", "null", "1e-999", "1e999", "NaN", "inf"]
        {
            assert_eq!(per_million(bad), None, "{bad}");
        }
        // The text it prints converts back to the same rate as the per-token original.
        for text in ["3e-06", "7.5e-08", "2.25e-05", "0.0000000375", "1.25e-7"] {
            let shifted = per_million(text).unwrap();
            assert_eq!(usd_per_million_to_atto(&shifted), usd_per_token_to_atto(text), "{text}");
        }
    }

    #[test]
    fn plain_decimal_text_is_exact() {
        assert_eq!(plain_decimal_text("1e-02").as_deref(), Some("0.01"));
        assert_eq!(plain_decimal_text("0.0100").as_deref(), Some("0.01"));
        assert_eq!(plain_decimal_text("2e-06").as_deref(), Some("0.000002"));
        assert_eq!(plain_decimal_text("12").as_deref(), Some("12"));
        assert_eq!(plain_decimal_text("0").as_deref(), Some("0"));
        assert_eq!(plain_decimal_text("-1"), None);
        assert_eq!(usd_per_unit_to_atto(&plain_decimal_text("5e-3").unwrap()), usd_per_unit_to_atto("0.005"));
    }

    #[test]
    fn formats_trimmed() {
        assert_eq!(nano_to_usd(924_000), "0.000924");
        assert_eq!(nano_to_usd(3_000_000_000), "3");
        assert_eq!(nano_to_usd(-1), "-0.000000001");
        assert_eq!(nano_to_usd(0), "0");
    }
}
