//! [`AnyValue`]: a [`Value`] read by the SDK's own visitor, which [`super::parse_unique`]
//! shares.
//!
//! serde_json's `Value` visitor, with the workspace's `raw_value` feature on (the gateway
//! uses `RawValue`), reads an object whose first key is serde_json's private raw-value
//! token as the JSON text of its string. That path ends in serde_json's type error,
//! whose message prints a float with serde_json's float printer: a single
//! `Value::deserialize` in a plugin links its 17 KB of tables into every instance's
//! memory image (see [`super::number_text()`]). Plugin code reads a whole `Value` with
//! [`AnyValue`] ([`super::parse`], [`super::lenient::NonNullValue`]) instead: the same
//! `Value` serde_json builds, a repeated key keeping its last value, without that path.

use super::Value;
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number};
use std::fmt;

/// A [`Value`] as serde_json's own `Value` reads it (see the module docs).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AnyValue(pub Value);

impl<'de> Deserialize<'de> for AnyValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ValueVisitor::<false>).map(AnyValue)
    }
}

/// Builds a [`Value`]; `UNIQUE` refuses a key repeated in one object (an error naming
/// it), otherwise the last value of a repeated key stands, as in serde_json's.
struct ValueVisitor<const UNIQUE: bool>;

impl<const UNIQUE: bool> ValueVisitor<UNIQUE> {
    /// The value at the deserializer, read with this visitor.
    fn read<'de, D: Deserializer<'de>>(d: D) -> Result<Value, D::Error> {
        d.deserialize_any(ValueVisitor::<UNIQUE>)
    }
}

/// One element or entry value, read with the visitor of its container (and, `UNIQUE`, a
/// whole body for [`super::parse_unique`]).
pub(super) struct Element<const UNIQUE: bool>(pub(super) Value);

impl<'de, const UNIQUE: bool> Deserialize<'de> for Element<UNIQUE> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        ValueVisitor::<UNIQUE>::read(d).map(Element)
    }
}

impl<'de, const UNIQUE: bool> Visitor<'de> for ValueVisitor<UNIQUE> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E: de::Error>(self, b: bool) -> Result<Value, E> {
        Ok(Value::Bool(b))
    }
    fn visit_i64<E: de::Error>(self, n: i64) -> Result<Value, E> {
        Ok(Value::Number(n.into()))
    }
    fn visit_u64<E: de::Error>(self, n: u64) -> Result<Value, E> {
        Ok(Value::Number(n.into()))
    }
    fn visit_f64<E: de::Error>(self, f: f64) -> Result<Value, E> {
        // What serde_json's own `Value` does (JSON text has no non-finite numbers).
        Ok(Number::from_f64(f).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E: de::Error>(self, s: &str) -> Result<Value, E> {
        Ok(Value::String(s.to_owned()))
    }
    fn visit_string<E: de::Error>(self, s: String) -> Result<Value, E> {
        Ok(Value::String(s))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        Self::read(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(Element::<UNIQUE>(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if UNIQUE && out.contains_key(&key) {
                let key = super::quoted(&key);
                return Err(de::Error::custom(format_args!("the key {key} appears twice in one object")));
            }
            let Element::<UNIQUE>(value) = map.next_value()?;
            out.insert(key, value);
        }
        Ok(Value::Object(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `Value` serde_json reads, from text, from the SDK's scanner and from a `Value`.
    #[test]
    fn reads_what_serde_json_reads() {
        for text in [
            r#"{"a":1,"b":[true,null,-2,3.5,"x\u0000y",-0,1e-7],"c":{"d":{}},"e":18446744073709551615}"#,
            r#"{"n":1,"n":{"m":2},"n":[3]}"#,
            r#"[{"k":"v","k":null}]"#,
            "[]",
            "7",
            "-12",
            r#""s""#,
            "null",
        ] {
            let theirs: Value = serde_json::from_str(text).expect("JSON");
            assert_eq!(serde_json::from_str::<AnyValue>(text).expect("JSON").0, theirs, "{text}");
            assert_eq!(super::super::from_slice::<AnyValue>(text.as_bytes()).expect("JSON").0, theirs, "{text}");
            assert_eq!(AnyValue::deserialize(&theirs).expect("a Value").0, theirs, "{text}");
        }
        // serde_json's private raw-value key is a key like any other here.
        let raw = r#"{"$serde_json::private::RawValue":"[1]"}"#;
        let AnyValue(Value::Object(map)) = serde_json::from_str(raw).expect("JSON") else { panic!("an object") };
        assert_eq!(map["$serde_json::private::RawValue"], "[1]");
        for bad in [r#"{"n":1e400}"#, "{", r#"{"a":1,}"#, "[1 2]"] {
            let theirs = serde_json::from_str::<Value>(bad).expect_err("not JSON").to_string();
            assert_eq!(serde_json::from_str::<AnyValue>(bad).expect_err("not JSON").to_string(), theirs, "{bad}");
        }
    }
}
