//! Exact decimal text <-> nano-USD conversion (no floating point on money).

/// Parses a decimal USD amount (`"0.000924"`, `"1.05e-5"`, `"-2"`) to nano-USD,
/// rounding half away from zero at the ninth decimal. `None` when not a number or
/// out of range.
pub fn usd_to_nano(text: &str) -> Option<i64> {
    let text = text.trim();
    let (negative, body) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    let (mantissa, exp) = match body.find(['e', 'E']) {
        Some(i) => (&body[..i], body[i + 1..].parse::<i32>().ok()?),
        None => (body, 0),
    };
    let (int_part, frac_part) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if int_part.is_empty() && frac_part.is_empty() {
        return None;
    }
    if !int_part.bytes().chain(frac_part.bytes()).all(|b| b.is_ascii_digit()) {
        return None;
    }
    // value = digits * 10^(exp - frac_len); nano = value * 10^9.
    let digits = format!("{int_part}{frac_part}");
    let digits = digits.trim_start_matches('0');
    let shift = exp.checked_sub(i32::try_from(frac_part.len()).ok()?)?.checked_add(9)?;
    let magnitude: i128 = if digits.is_empty() {
        0
    } else if shift >= 0 {
        let d: i128 = digits.parse().ok()?;
        d.checked_mul(10i128.checked_pow(u32::try_from(shift).ok()?)?)?
    } else {
        let drop = usize::try_from(-shift).ok()?;
        if drop > digits.len() {
            // Less than a tenth of a nano-USD: rounds to zero.
            0
        } else {
            let (keep, dropped) = digits.split_at(digits.len() - drop);
            let base: i128 = if keep.is_empty() { 0 } else { keep.parse().ok()? };
            base + i128::from(dropped.as_bytes()[0] >= b'5')
        }
    };
    let v = i64::try_from(magnitude).ok()?;
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

#[cfg(test)]
mod tests {
    use super::*;

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
    fn formats_trimmed() {
        assert_eq!(nano_to_usd(924_000), "0.000924");
        assert_eq!(nano_to_usd(3_000_000_000), "3");
        assert_eq!(nano_to_usd(-1), "-0.000000001");
        assert_eq!(nano_to_usd(0), "0");
    }
}
