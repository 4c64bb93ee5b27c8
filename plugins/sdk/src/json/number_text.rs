//! JSON numbers and values as text, exactly as serde_json prints them, without serde_json's
//! float printer.
//!
//! serde_json prints a float (`Number`'s `Display`, a `Value`'s JSON text) with the
//! `zmij` crate, whose lookup tables (powers of ten, exponent strings `e-324`..`e+308`,
//! digit pairs) are 17 KB of static data: 43 % of openai.wasm's data segment, which
//! every plugin instance maps as its own memory image. [`f64_text`] prints with `ryu`
//! instead, built with its `small` tables (under 1 KB: every 26th power of five, the rest
//! computed), which chooses the same digits (the shortest that read back as the float,
//! the nearest of those, ties to even) in the same layout but for the `+` of a positive
//! exponent. The tests hold the text to serde_json's, byte for byte, over random floats,
//! ties, every power of two and the edge cases.
//!
//! Use these instead of `to_string()` on a [`Number`] or a [`Value`] in plugin code: a
//! single call of either links the tables back in (and so does reading a `Value` with
//! serde_json's own visitor, see [`super::AnyValue`]).

use super::Value;
use serde::Serialize;
use serde_json::Number;
use serde_json::ser::{Formatter, Serializer};
use std::io;

/// A finite `f64` as serde_json prints it (`0.0`, `-1.5`, `100.0`, `0.0000105`, `1e-6`,
/// `2.5e-7`, `1e+30`): the shortest digits that read back as the same float, in plain
/// notation for exponents -5..=15 and as `d.ddde±x` beyond. A non-finite float (which
/// no JSON number is) prints as some number.
pub fn f64_text(f: f64) -> String {
    let mut buffer = ryu::Buffer::new();
    let text = buffer.format_finite(f);
    match text.split_once('e') {
        // ryu writes `1e30` where serde_json writes `1e+30`.
        Some((mantissa, exp)) if !exp.starts_with('-') => format!("{mantissa}e+{exp}"),
        _ => text.to_owned(),
    }
}

/// A [`Number`] as its `Display` (`to_string()`) prints it.
pub fn number_text(n: &Number) -> String {
    if let Some(u) = n.as_u64() {
        u.to_string()
    } else if let Some(i) = n.as_i64() {
        i.to_string()
    } else {
        // A `Number` that is neither integer is a finite float.
        n.as_f64().map(f64_text).unwrap_or_default()
    }
}

/// A [`Value`] as compact JSON text, as its `Display` (`to_string()`) prints it.
pub fn value_text(v: &Value) -> String {
    let mut out = Vec::new();
    v.serialize(&mut Serializer::with_formatter(&mut out, Compact))
        .expect("a Value serializes to a Vec without error (its map keys are strings)");
    String::from_utf8(out).expect("serde_json writes UTF-8")
}

/// serde_json's compact formatter with floats printed by [`f64_text`] (every other
/// method is the trait's default, which is the compact layout).
struct Compact;

impl Formatter for Compact {
    fn write_f64<W: ?Sized + io::Write>(&mut self, writer: &mut W, value: f64) -> io::Result<()> {
        // serde_json writes `null` for a non-finite float before it reaches the formatter.
        writer.write_all(f64_text(value).as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// serde_json's own text of a finite float.
    fn serde_json_text(f: f64) -> String {
        Number::from_f64(f).expect("finite").to_string()
    }

    /// splitmix64: deterministic pseudo-random bits without a dependency.
    fn next(state: &mut u64) -> u64 {
        *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = *state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    #[test]
    fn floats_print_as_serde_json_prints_them() {
        let edges = [
            0.0,
            -0.0,
            1.0,
            -1.5,
            0.1,
            0.30000000000000004,
            100.0,
            1e15,
            1e16,
            123456789012345680.0,
            9007199254740992.0,
            1e-5,
            1.5e-5,
            1e-6,
            0.0000105,
            2.5e-7,
            0.0133203,
            1e30,
            1e100,
            1e-100,
            1e300,
            f64::MAX,
            f64::MIN,
            f64::MIN_POSITIVE,
            f64::EPSILON,
            5e-324,
            2.225073858507201e-308,
            9223372036.854776,
            18446744073709551616.0,
        ];
        for f in edges {
            assert_eq!(f64_text(f), serde_json_text(f), "{f:e}");
        }
    }

    #[test]
    fn random_floats_print_as_serde_json_prints_them() {
        let mut state = 0x5EED;
        for _ in 0..300_000 {
            let f = f64::from_bits(next(&mut state));
            if f.is_finite() {
                assert_eq!(f64_text(f), serde_json_text(f), "{:#x}", f.to_bits());
            }
        }
        // Decimal-looking amounts (what providers send): up to 17 digits × 10^-30..10^10.
        for _ in 0..200_000 {
            let digits = next(&mut state) % 10u64.pow(1 + (next(&mut state) % 17) as u32);
            let exp = (next(&mut state) % 41) as i32 - 30;
            let f: f64 = format!("{digits}e{exp}").parse().expect("a decimal");
            assert_eq!(f64_text(f), serde_json_text(f), "{digits}e{exp}");
        }
    }

    #[test]
    fn ties_and_powers_of_two_print_as_serde_json_prints_them() {
        // Short binary fractions end in a 5 one digit past the shortest length, where the
        // two candidates are equally near; powers of two have a narrower interval below.
        // Exactly `...031.25`, `2^29 + 2^-8`, `1 + 2^-17`, `2^-25`: ties; `2^-24`: not.
        let two = |k| f64::powi(2.0, k);
        let ties = [840847321408031.0 + 0.25, two(29) + two(-8), 1.0 + two(-17), two(-25)];
        for f in ties.into_iter().chain([0.5, 2.5e-7, two(-24)]) {
            assert_eq!(f64_text(f), serde_json_text(f), "{f:e}");
        }
        let mut state = 0x7135;
        for _ in 0..300_000 {
            let int = next(&mut state) >> (11 + next(&mut state) % 50);
            let f = int as f64 / f64::powi(2.0, (next(&mut state) % 40) as i32);
            assert_eq!(f64_text(f), serde_json_text(f), "{int} / 2^k");
        }
        for k in -1074..=1023 {
            let f = f64::powi(2.0, k);
            assert_eq!(f64_text(f), serde_json_text(f), "2^{k}");
        }
    }

    #[test]
    fn numbers_and_values_print_as_serde_json_prints_them() {
        for n in [json!(0), json!(-0.0), json!(u64::MAX), json!(i64::MIN), json!(-7), json!(1.5e-7), json!(2.0)] {
            let Value::Number(number) = &n else { unreachable!("a number") };
            assert_eq!(number_text(number), number.to_string());
            assert_eq!(value_text(&n), n.to_string());
        }
        let v: Value = serde_json::from_str(
            r#"{"code": 1.5e300, "detail": [1, -2, 0.1, 1e-7, true, null, "q\"\\\n\u0001é"], "e": {}, "a": []}"#,
        )
        .expect("JSON");
        assert_eq!(value_text(&v), v.to_string());
        for text in [r#""plain""#, "null", "false", "[]", "{}", r#"{"k":{"k":[{"k":-0.0}]}}"#] {
            let v: Value = serde_json::from_str(text).expect("JSON");
            assert_eq!(value_text(&v), v.to_string(), "{text}");
        }
    }
}
