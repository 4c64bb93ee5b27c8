//! [`Usd`]: a provider's own reported cost (OpenRouter's `usage.cost`, Perplexity's
//! `usage.cost.total_cost`), a USD amount read exactly as nano-USD.

use super::Value;
use super::lenient::{containers_are, skip_map, skip_seq};
use super::number_text::f64_text;
use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use std::fmt;

/// A non-negative USD amount as nano-USD (a provider's own reported cost, OpenRouter's
/// `usage.cost`, Perplexity's `usage.cost.total_cost`): an integer is scaled exactly; a
/// number with a fraction or exponent is converted through the decimal text serde_json
/// prints for it (the shortest digits that read back as the same float, as [`super::number_text()`] prints it),
/// never a float product, which is exact up to 15 significant digits; a string is read as decimal text; anything
/// else, a negative amount or one beyond `i64` nano-USD is `None`. The decimal text is
/// rounded half up at the ninth decimal ([`crate::decimal::usd_to_nano`]), so an amount
/// that rounds to zero is zero, even a negative one (`-1e-12`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usd(pub Option<i64>);

/// Nano-USD in one USD.
const NANO_PER_USD: i64 = 1_000_000_000;

impl Usd {
    fn from_text(text: &str) -> Usd {
        Usd(crate::decimal::usd_to_nano(text).filter(|nano| *nano >= 0))
    }

    fn from_whole(usd: u64) -> Usd {
        Usd(i64::try_from(usd).ok().and_then(|usd| usd.checked_mul(NANO_PER_USD)))
    }

    /// The amount of a [`Value`] already parsed, read the same way.
    pub fn of(v: &Value) -> Option<i64> {
        Usd::deserialize(v).ok()?.0
    }
}

impl<'de> Deserialize<'de> for Usd {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Usd;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Usd, E> {
                Ok(Usd(None))
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<Usd, E> {
                Ok(Usd::from_whole(n))
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<Usd, E> {
                Ok(u64::try_from(n).map_or(Usd(None), Usd::from_whole))
            }
            fn visit_f64<E: de::Error>(self, n: f64) -> Result<Usd, E> {
                // JSON text has no non-finite numbers; another format's are no amount.
                Ok(if n.is_finite() { Usd::from_text(&f64_text(n)) } else { Usd(None) })
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Usd, E> {
                Ok(Usd::from_text(s))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Usd, E> {
                Ok(Usd(None))
            }
            containers_are!(Usd(None));
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::lenient::{Fields, Obj, skip, value};

    /// The amount read from JSON text by serde_json, by the SDK's scanner and from a
    /// parsed `Value`; the three always agree.
    fn read(text: &str) -> Option<i64> {
        let by_serde_json = serde_json::from_str::<Usd>(text).expect("JSON").0;
        let by_scanner = crate::json::from_slice::<Usd>(text.as_bytes()).expect("JSON").0;
        let from_value = Usd::of(&serde_json::from_str::<Value>(text).expect("JSON"));
        assert_eq!(by_scanner, by_serde_json, "{text}: scanner");
        assert_eq!(from_value, by_serde_json, "{text}: from a Value");
        by_serde_json
    }

    #[test]
    fn numbers_read_as_exact_nano_usd() {
        for (text, nano) in [
            ("0", Some(0)),
            ("0.0", Some(0)),
            ("-0", Some(0)),
            ("-0.0", Some(0)),
            ("1", Some(1_000_000_000)),
            ("9223372036", Some(9_223_372_036_000_000_000)),
            ("0.0133203", Some(13_320_300)),
            ("0.000924", Some(924_000)),
            ("0.1", Some(100_000_000)),
            ("0.30000000000000004", Some(300_000_000)),
            ("1e-6", Some(1_000)),
            ("2.5E-7", Some(250)),
            ("7.0e-7", Some(700)),
            ("1.05e-5", Some(10_500)),
            ("1E+2", Some(100_000_000_000)),
            ("1e-30", Some(0)),
            ("4.9e-324", Some(0)),
            // More than nine decimals: rounded half up at the ninth.
            ("5e-10", Some(1)),
            ("4.9e-10", Some(0)),
            ("0.0000000015", Some(2)),
            ("0.0000000014", Some(1)),
            ("0.00000000049", Some(0)),
            ("0.123456789123", Some(123_456_789)),
            ("0.1234567895", Some(123_456_790)),
            ("0.1234567885", Some(123_456_789)),
            ("1.0000000005", Some(1_000_000_001)),
            ("123456789.123456789", Some(123_456_789_123_456_790)),
        ] {
            assert_eq!(read(text), nano, "{text}");
        }
    }

    #[test]
    fn negative_huge_and_non_numbers_are_none() {
        for text in [
            "-1",
            "-0.5",
            "-5e-10",
            "9223372037",
            "9223372036.854775807",
            "18446744073709551615",
            "18446744073709551616",
            "1e30",
            "1e300",
            "1.7976931348623157e308",
            "null",
            "true",
            "false",
            "[]",
            "[1]",
            "{}",
            r#"{"a": 1}"#,
            r#""abc""#,
            r#""""#,
            r#""-1""#,
            r#""1.2.3""#,
            r#""0x10""#,
        ] {
            assert_eq!(read(text), None, "{text}");
        }
        // A negative amount that rounds to zero nano-USD is zero (`usd_to_nano` rounds first).
        assert_eq!(read("-1e-12"), Some(0));
        assert_eq!(read("-4e-10"), Some(0));
    }

    #[test]
    fn strings_read_as_decimal_text() {
        for (text, nano) in [
            (r#""0.0133203""#, Some(13_320_300)),
            (r#""1e-6""#, Some(1_000)),
            (r#"" 1 ""#, Some(1_000_000_000)),
            (r#""+1""#, Some(1_000_000_000)),
            // Text is not a float: every digit counts.
            (r#""0.00000000050000000000000001""#, Some(1)),
            (r#""1.00000000049999999""#, Some(1_000_000_000)),
        ] {
            assert_eq!(read(text), nano, "{text}");
        }
    }

    /// A JSON number with more significant digits than a float keeps exactly (over 15) is
    /// the float serde_json parses, whose shortest text can round the other way than the
    /// digits sent; as a string the same digits read exactly (above). Which float a number
    /// of over 17 digits parses to depends on serde_json's `float_roundtrip` feature, which a
    /// workspace build turns on (the host's `jsonschema`) and a plugin build does not.
    #[test]
    fn numbers_beyond_a_float_are_read_as_the_float() {
        assert_eq!(read("1.00000000049999999"), Some(1_000_000_001));
        for text in ["0.00000000050000000000000001", "0.00000000049999999999999999"] {
            assert!(matches!(read(text), Some(0 | 1)), "{text}: {:?}", read(text));
        }
    }

    #[test]
    fn a_repeated_key_keeps_its_last_amount() {
        #[derive(Default)]
        struct Cost(Option<i64>);
        impl<'de> Fields<'de> for Cost {
            fn field<A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<(), A::Error> {
                match key {
                    "cost" => self.0 = value::<Usd, _>(map)?.0,
                    _ => skip(map)?,
                }
                Ok(())
            }
        }
        let cost = |text: &str| crate::json::from_slice::<Obj<Cost>>(text.as_bytes()).unwrap().0.unwrap().0;
        assert_eq!(cost(r#"{"cost": 1, "cost": 2.5e-7}"#), Some(250));
        assert_eq!(cost(r#"{"cost": 1, "cost": null}"#), None);
        assert_eq!(cost(r#"{"cost": "x", "other": [1.5], "cost": "0.5"}"#), Some(500_000_000));
    }

    /// The amount of a float is what the conversion through serde_json's own float text
    /// (`Number`'s `Display`, which this crate no longer links) gave.
    #[test]
    fn floats_read_as_through_serde_json_number_text() {
        let mut state: u64 = 0xC057;
        for _ in 0..100_000 {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let digits = (state >> 11) % 10u64.pow(1 + (state % 17) as u32);
            let exp = ((state >> 5) % 30) as i32 - 22;
            let text = format!("{digits}e{exp}");
            let f: f64 = serde_json::from_str(&text).expect("a number");
            let old = serde_json::Number::from_f64(f).map(|n| crate::decimal::usd_to_nano(&n.to_string()));
            assert_eq!(read(&text), old.flatten().filter(|nano| *nano >= 0), "{text}");
        }
    }
}
