//! Typed JSON reading for the hot path: small structs that pick out the few fields a
//! plugin needs, borrow strings where they can and allocate nothing for the rest.
//!
//! Every type here reads *any* JSON value without a type error, with exactly the
//! leniency of the [`crate::json`] helpers on a [`Value`]: a count that is not a
//! non-negative integer is absent, a string field that is not a string is absent, an
//! object that is not an object is `None`, and a key that appears twice keeps its last
//! value. The typed fields read the same as the `Value` lookups would.
//!
//! Values a reader does not use are skipped with [`Skip`], which is serde's
//! [`IgnoredAny`](serde::de::IgnoredAny): serde_json checks their syntax (structure,
//! escapes, control characters, number grammar, trailing bytes) but does not decode
//! them. So `serde_json::from_slice::<Obj<T>>` refuses every body that is not JSON
//! text, with the message a `Value` parse gives, but it reads the usage out of a body
//! whose *skipped* strings hold invalid UTF-8 or a lone `\u` surrogate, whose skipped
//! numbers overflow an `f64`, or whose skipped values nest deeper than 128 levels —
//! bodies a `Value` parse refuses. For billing that is the right way round: the
//! provider counted and charged those tokens, and the text around the counts is the
//! client's business (it is relayed untouched either way). Decoding skipped strings
//! was a fifth of a native response parse (extract + price 24.2k -> 18.9k instructions).
//!
//! The types also deserialize from a `&Value` (as a `Deserializer`), which is how code
//! that already holds a `Value` reuses the same field logic.

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use std::borrow::Cow;
use std::fmt;

pub use crate::json::Value;
pub use crate::json::usd::Usd;

/// Implements the scalar `visit_*` methods of a visitor as `$value` (containers are
/// handled by the visitor itself). serde_json only ever calls these on `deserialize_any`.
macro_rules! scalars_are {
    ($value:expr) => {
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
            Ok($value)
        }
        fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
            Ok($value)
        }
        fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
            Ok($value)
        }
        fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
            Ok($value)
        }
        fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
            Ok($value)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok($value)
        }
    };
}

/// Implements `visit_seq` and `visit_map` as "read and discard every element, then `$value`".
macro_rules! containers_are {
    ($value:expr) => {
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            skip_seq(&mut seq)?;
            Ok($value)
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            skip_map(&mut map)?;
            Ok($value)
        }
    };
}
pub(super) use containers_are;

/// Reads and drops every remaining element of a sequence (for `visit_seq` of a reader
/// that wants no array there).
pub fn skip_seq<'de, A: SeqAccess<'de>>(seq: &mut A) -> Result<(), A::Error> {
    while seq.next_element::<Skip>()?.is_some() {}
    Ok(())
}

/// Reads and drops every remaining entry of a map (for `visit_map` of a reader that
/// wants no object there).
pub fn skip_map<'de, A: MapAccess<'de>>(map: &mut A) -> Result<(), A::Error> {
    while map.next_key::<Skip>()?.is_some() {
        map.next_value::<Skip>()?;
    }
    Ok(())
}

/// Any JSON value, checked for syntax and dropped without being decoded (see the
/// module docs for what that accepts that a `Value` parse does not).
pub type Skip = de::IgnoredAny;

/// Reads the value of the next map entry as `T`; for [`Fields::field`] implementations.
pub fn value<'de, T: Deserialize<'de>, A: MapAccess<'de>>(map: &mut A) -> Result<T, A::Error> {
    map.next_value()
}

/// Reads and drops the value of the next map entry (a key the reader does not use).
pub fn skip<'de, A: MapAccess<'de>>(map: &mut A) -> Result<(), A::Error> {
    map.next_value::<Skip>().map(drop)
}

/// A token count read like [`crate::json::u64_at`]: a non-negative integer (or a float
/// with no fraction below 2^64); anything else, `null` included, is `None`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Count(pub Option<u64>);

impl<'de> Deserialize<'de> for Count {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Count;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Count, E> {
                Ok(Count(None))
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<Count, E> {
                Ok(Count(Some(n)))
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<Count, E> {
                // `Value::as_u64` of a non-negative i64; a negative one is no count.
                Ok(Count(u64::try_from(n).ok()))
            }
            fn visit_f64<E: de::Error>(self, f: f64) -> Result<Count, E> {
                Ok(Count((f >= 0.0 && f.fract() == 0.0 && f < u64::MAX as f64).then_some(f as u64)))
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Count, E> {
                Ok(Count(None))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Count, E> {
                Ok(Count(None))
            }
            containers_are!(Count(None));
        }
        d.deserialize_any(V)
    }
}

/// A string (borrowed from the input when it has no escapes); `None` for any other value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Str<'a>(pub Option<Cow<'a, str>>);

impl<'a> Str<'a> {
    /// The string, if the value was one.
    pub fn as_deref(&self) -> Option<&str> {
        self.0.as_deref()
    }
}

impl<'de> Deserialize<'de> for Str<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Str<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
                Ok(Str(None))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
                Ok(Str(None))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
                Ok(Str(None))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
                Ok(Str(None))
            }
            fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> Result<Self::Value, E> {
                Ok(Str(Some(Cow::Borrowed(s))))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Self::Value, E> {
                Ok(Str(Some(Cow::Owned(s.to_owned()))))
            }
            fn visit_string<E: de::Error>(self, s: String) -> Result<Self::Value, E> {
                Ok(Str(Some(Cow::Owned(s))))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Str(None))
            }
            containers_are!(Str(None));
        }
        d.deserialize_any(V)
    }
}

/// The byte length of a string (unescaped, as `Value::as_str` would give it) without
/// keeping the string; `None` for any other value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StrLen(pub Option<u64>);

impl StrLen {
    /// The length, or zero when the value was not a string.
    pub fn or_zero(self) -> u64 {
        self.0.unwrap_or(0)
    }
}

impl<'de> Deserialize<'de> for StrLen {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = StrLen;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<StrLen, E> {
                Ok(StrLen(None))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<StrLen, E> {
                Ok(StrLen(None))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<StrLen, E> {
                Ok(StrLen(None))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<StrLen, E> {
                Ok(StrLen(None))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<StrLen, E> {
                Ok(StrLen(Some(s.len() as u64)))
            }
            fn visit_unit<E: de::Error>(self) -> Result<StrLen, E> {
                Ok(StrLen(None))
            }
            containers_are!(StrLen(None));
        }
        d.deserialize_any(V)
    }
}

/// Whether a present value is anything but `null` (`Value::is_null` negated).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NonNull(pub bool);

impl<'de> Deserialize<'de> for NonNull {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = NonNull;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<NonNull, E> {
                Ok(NonNull(true))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<NonNull, E> {
                Ok(NonNull(true))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<NonNull, E> {
                Ok(NonNull(true))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<NonNull, E> {
                Ok(NonNull(true))
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<NonNull, E> {
                Ok(NonNull(true))
            }
            fn visit_unit<E: de::Error>(self) -> Result<NonNull, E> {
                Ok(NonNull(false))
            }
            containers_are!(NonNull(true));
        }
        d.deserialize_any(V)
    }
}

/// A value kept whole as a [`Value`] (read as [`AnyValue`](crate::json::AnyValue)) unless
/// it is `null` (for rare, small parts such as an `error` object, whose every detail may
/// matter).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NonNullValue(pub Option<Value>);

impl<'de> Deserialize<'de> for NonNullValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let crate::json::AnyValue(v) = Deserialize::deserialize(d)?;
        Ok(NonNullValue((!v.is_null()).then_some(v)))
    }
}

/// The fields of interest of a JSON object, filled in key by key.
///
/// `field` must consume the entry's value exactly once: with [`value`] for a key it
/// reads (assigning the result, so that a repeated key keeps its last value, as in a
/// `Value` map), and with [`skip`] for every other key.
pub trait Fields<'de>: Default {
    /// Reads the value of one entry.
    fn field<A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<(), A::Error>;
}

/// `Some` when the value is a JSON object (read with [`Fields`]), `None` for any other value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Obj<T>(pub Option<T>);

impl<T> Default for Obj<T> {
    fn default() -> Self {
        Obj(None)
    }
}

impl<'de, T: Fields<'de>> Deserialize<'de> for Obj<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(std::marker::PhantomData<T>);
        impl<'de, T: Fields<'de>> Visitor<'de> for V<T> {
            type Value = Obj<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            scalars_are!(Obj(None));
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Obj<T>, A::Error> {
                skip_seq(&mut seq)?;
                Ok(Obj(None))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Obj<T>, A::Error> {
                let mut fields = T::default();
                while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
                    fields.field(&key, &mut map)?;
                }
                Ok(Obj(Some(fields)))
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

/// A fold over the elements of a JSON array.
pub trait Fold<'de>: Default {
    /// How one element is read.
    type Item: Deserialize<'de>;
    /// Folds in the next element.
    fn add(&mut self, item: Self::Item);
}

/// `Some` when the value is a JSON array (its elements folded in order with [`Fold`]),
/// `None` for any other value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seq<F>(pub Option<F>);

impl<F> Default for Seq<F> {
    fn default() -> Self {
        Seq(None)
    }
}

impl<'de, F: Fold<'de>> Deserialize<'de> for Seq<F> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<F>(std::marker::PhantomData<F>);
        impl<'de, F: Fold<'de>> Visitor<'de> for V<F> {
            type Value = Seq<F>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            scalars_are!(Seq(None));
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Seq<F>, A::Error> {
                let mut fold = F::default();
                while let Some(item) = seq.next_element::<F::Item>()? {
                    fold.add(item);
                }
                Ok(Seq(Some(fold)))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Seq<F>, A::Error> {
                skip_map(&mut map)?;
                Ok(Seq(None))
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

/// An object key, unescaped (borrowed unless it had escapes).
struct Key<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object key")
            }
            fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(s)))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(s.to_owned())))
            }
            fn visit_string<E: de::Error>(self, s: String) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(s)))
            }
        }
        // serde_json parses keys as strings whatever is asked for; `&Value` maps give
        // their keys as strings too.
        d.deserialize_str(V)
    }
}

/// A content part (OpenAI `content[]`, Gemini `parts[]`): only the length of its `text` counts.
#[derive(Debug, Default)]
pub struct TextPart {
    /// Bytes of `text`, when it is a string.
    pub text: StrLen,
}

impl<'de> Fields<'de> for TextPart {
    fn field<A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<(), A::Error> {
        match key {
            "text" => self.text = value(map)?,
            _ => skip(map)?,
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::{str_at, u64_at};

    #[derive(Debug, Default, PartialEq)]
    struct T<'a> {
        n: Option<u64>,
        s: Option<Cow<'a, str>>,
        len: Option<u64>,
        nn: bool,
        inner: Option<Inner>,
        list: Option<u64>,
    }

    #[derive(Debug, Default, PartialEq)]
    struct Inner {
        n: Option<u64>,
    }

    #[derive(Default)]
    struct Sum(u64);

    impl<'de> Fold<'de> for Sum {
        type Item = Count;
        fn add(&mut self, item: Count) {
            self.0 += item.0.unwrap_or(0);
        }
    }

    impl<'de> Fields<'de> for Inner {
        fn field<A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<(), A::Error> {
            match key {
                "n" => self.n = value::<Count, _>(map)?.0,
                _ => skip(map)?,
            }
            Ok(())
        }
    }

    impl<'de> Fields<'de> for T<'de> {
        fn field<A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<(), A::Error> {
            match key {
                "n" => self.n = value::<Count, _>(map)?.0,
                "s" => self.s = value::<Str, _>(map)?.0,
                "len" => self.len = value::<StrLen, _>(map)?.0,
                "nn" => self.nn = value::<NonNull, _>(map)?.0,
                "inner" => self.inner = value::<Obj<Inner>, _>(map)?.0,
                "list" => self.list = value::<Seq<Sum>, _>(map)?.0.map(|s| s.0),
                _ => skip(map)?,
            }
            Ok(())
        }
    }

    fn typed(text: &str) -> Result<Option<T<'_>>, String> {
        serde_json::from_str::<Obj<T>>(text).map(|o| o.0).map_err(|e| e.to_string())
    }

    /// An error message without its position.
    fn what(message: &str) -> &str {
        message.split(" at line ").next().unwrap_or(message)
    }

    /// The typed read agrees with the `Value` helpers, from text and from a `Value`.
    fn agrees(text: &str) {
        let v: Result<Value, String> = serde_json::from_str(text).map_err(|e| e.to_string());
        let t = typed(text);
        match (&v, &t) {
            // Skipped strings report a control character one column earlier.
            (Err(a), Err(b)) => assert_eq!(what(a), what(b), "{text}: errors differ"),
            (Ok(v), Ok(t)) => {
                let t_from_value = Obj::<T>::deserialize(v).unwrap().0;
                assert_eq!(t, &t_from_value, "{text}: from text vs from Value");
                assert_eq!(t.is_some(), v.is_object(), "{text}: object or not");
                let Some(t) = t else { return };
                assert_eq!(t.n, u64_at(v, &["n"]), "{text}: n");
                assert_eq!(t.s.as_deref(), str_at(v, &["s"]), "{text}: s");
                assert_eq!(t.len, str_at(v, &["len"]).map(|s| s.len() as u64), "{text}: len");
                assert_eq!(t.nn, v.get("nn").is_some_and(|x| !x.is_null()), "{text}: nn");
                assert_eq!(t.inner.is_some(), v.get("inner").is_some_and(Value::is_object), "{text}: inner");
                assert_eq!(t.inner.as_ref().and_then(|i| i.n), u64_at(v, &["inner", "n"]), "{text}: inner.n");
                let sum = v.get("list").and_then(Value::as_array).map(|l| l.iter().filter_map(Value::as_u64).sum());
                assert_eq!(t.list, sum, "{text}: list");
            }
            _ => panic!("{text}: Value gave {v:?}, typed gave {t:?}"),
        }
    }

    #[test]
    fn typed_reads_agree_with_value_lookups() {
        for text in [
            r#"{"n": 5, "s": "x", "len": "h\u00e9\n", "nn": 0, "inner": {"n": 2}, "list": [1, 2, "3", null]}"#,
            r#"{"n": -1, "s": 3, "len": null, "nn": null, "inner": [], "list": {}}"#,
            r#"{"n": 1.0, "inner": {"n": 1.5}, "list": []}"#,
            r#"{"n": 1e3, "s": {"a": [1, {"b": "c"}]}, "len": ["x"]}"#,
            r#"{"n": -0, "nn": false}"#,
            r#"{"n": 18446744073709551615}"#,
            r#"{"n": 18446744073709551616}"#,
            r#"{"n": 1e19}"#,
            r#"{"n": "12", "n": 7, "inner": {"n": 1}, "inner": {"m": 1}}"#,
            r#"{"n": 7, "n": null}"#,
            r#"{"\u006e": 9, "s": "tab\tesc\"aped"}"#,
            r#"[1, 2]"#,
            r#""text""#,
            r#"null"#,
            r#"{}"#,
            "  {\"n\": 1}  ",
        ] {
            agrees(text);
        }
    }

    #[test]
    fn rejects_what_a_value_parse_rejects_with_the_same_message() {
        for text in [
            "",
            "{",
            r#"{"n": 1"#,
            r#"{"n": 1,}"#,
            r#"{"n": 1} x"#,
            r#"{"n": 1e400}"#,
            r#"{"s": "\ud800"}"#,
            r#"{"other": "\x"}"#,
            r#"{"other": "\u12"}"#,
            "{\"other\": \"a\u{1}b\"}",
            r#"{"other": [1 2]}"#,
            r#"{"other": {"a" 1}}"#,
            r#"{"other": tru}"#,
            r#"{"other": 1.}"#,
            r#"{"other": -}"#,
            r#"{"other": "unterminated}"#,
            r#"{"n": 01}"#,
        ] {
            agrees(text);
        }
        // Invalid UTF-8 in a string that is read.
        let bytes = b"{\"s\": \"\xff\", \"n\": 1}";
        let v = serde_json::from_slice::<Value>(bytes).unwrap_err().to_string();
        let t = serde_json::from_slice::<Obj<T>>(bytes).unwrap_err().to_string();
        assert_eq!(v, t);
    }

    #[test]
    fn skipped_values_are_checked_for_syntax_only() {
        let deep_in_skip = format!(r#"{{"other": {}1{}, "n": 3}}"#, "[".repeat(200), "]".repeat(200));
        let lenient: [&[u8]; 5] = [
            b"{\"other\": \"\xff\", \"n\": 3}",
            br#"{"other": "\ud800", "n": 3}"#,
            br#"{"other": [1e400], "n": 3}"#,
            br#"{"other": {"k": "\udfff\ud800"}, "n": 3}"#,
            deep_in_skip.as_bytes(),
        ];
        for bytes in lenient {
            assert!(serde_json::from_slice::<Value>(bytes).is_err(), "a Value parse refuses it");
            let t = serde_json::from_slice::<Obj<T>>(bytes).unwrap().0.unwrap();
            assert_eq!(t.n, Some(3), "{}", String::from_utf8_lossy(bytes));
        }
        // A deep array where an object is wanted is "not an object", however deep.
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        assert_eq!(typed(&deep), Ok(None));
    }

    #[test]
    fn strings_without_escapes_are_borrowed() {
        let t = typed(r#"{"s": "plain"}"#).unwrap().unwrap();
        assert!(matches!(t.s, Some(Cow::Borrowed("plain"))));
        let t = typed(r#"{"s": "esc\naped"}"#).unwrap().unwrap();
        assert_eq!(t.s.as_deref(), Some("esc\naped"));
    }
}
