//! Hand-picked edge cases: unusual input, unusual `Deserialize` impls, deep nesting, and
//! the byte-run search at every offset.

use super::{Obj, Probe, agrees, fast};
use crate::bytes::find_special_words;
use crate::from_slice;
use crate::skip::MAX_SKIP_DEPTH;
use serde::de::{self, Deserializer, Visitor};
use std::fmt;

#[test]
fn unusual_input_gives_way_and_gets_serde_jsons_answer() {
    for (input, gives_way) in [
        (r#"{"n": -1}"#, false),
        (r#"{"n": -0}"#, false),
        (r#"{"n": -9223372036854775809}"#, false),
        (r#"{"n": -1.5e3}"#, false),
        (r#"{"n": --1}"#, true),
        (r#"{"n": 18446744073709551616}"#, true),
        (r#"{"n": 1e400}"#, true),
        (r#"{"n": 1.5e-30}"#, true),
        (r#"{"n": 12345678901234567.5}"#, true),
        (r#"{"n\u0041": 1}"#, false),
        (r#"{"s": "\ud800"}"#, true),
        (r#"{"s": "\udc00x"}"#, true),
        (r#"{"x": "\ud800"}"#, false),
        (r#"{"s": "a\u0000b"}"#, false),
        ("{\"s\": \"a\u{1}b\"}", true),
        (r#"{"n": 01}"#, true),
        (r#"{"n": 1.}"#, true),
        (r#"{"n": 1e}"#, true),
        (r#"{"x": [1,]}"#, true),
        (r#"{"x": 1,}"#, true),
        (r#"{"x" 1}"#, true),
        (r#"{"x": tru}"#, true),
        (r#"{} x"#, true),
        (r#"{"#, true),
        ("", true),
        (r#"[{"x":1},{"y":[true,false,null]}]"#, false),
        (r#"  {"x": {"y": {}} , "z": [ ] }  "#, false),
        (r#"{"x": "\q"}"#, true),
        (r#"{"x": "\u12G4"}"#, true),
        (r#"{"n": 2.0, "count": 1E2, "o": {"n": 7e-1}}"#, false),
    ] {
        let bytes = input.as_bytes();
        assert_eq!(fast::<Obj<Probe>>(bytes).is_none(), gives_way, "{input}");
        agrees(bytes);
    }
    // Invalid UTF-8: refused in a read string or a key, allowed in a skipped string.
    assert!(fast::<Obj<Probe>>(b"{\"s\": \"\xff\"}").is_none());
    assert!(fast::<Obj<Probe>>(b"{\"\xff\": 1}").is_none());
    assert!(fast::<Obj<Probe>>(b"{\"x\": \"\xff\"}").is_some());
    assert!(fast::<Obj<Probe>>(b"{\"x\": {\"\xff\": 1}}").is_some());
    for bytes in [&b"{\"s\": \"\xff\"}"[..], b"{\"\xff\": 1}", b"{\"x\": \"\xff\"}", b"{\"x\": {\"\xff\": 1}}"] {
        agrees(bytes);
    }
}

/// Types that bend serde's rules (swallow errors, read nothing, want a unit key) still
/// get serde_json's answer.
#[test]
fn unusual_deserialize_impls_get_serde_jsons_answer() {
    /// Catches the error of its inner read and carries on.
    #[derive(Debug, PartialEq)]
    struct Lenient(Option<f64>);
    impl<'de> de::Deserialize<'de> for Lenient {
        fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
            Ok(Lenient(f64::deserialize(d).ok()))
        }
    }
    /// Reads nothing at all.
    #[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
    struct Nothing;
    impl<'de> de::Deserialize<'de> for Nothing {
        fn deserialize<D: Deserializer<'de>>(_: D) -> std::result::Result<Self, D::Error> {
            Ok(Nothing)
        }
    }
    /// A key read with `deserialize_ignored_any` by a visitor that only takes a unit.
    #[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
    struct UnitKey;
    impl<'de> de::Deserialize<'de> for UnitKey {
        fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
            struct V;
            impl<'de> Visitor<'de> for V {
                type Value = UnitKey;
                fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                    f.write_str("unit")
                }
                fn visit_unit<E: de::Error>(self) -> std::result::Result<UnitKey, E> {
                    Ok(UnitKey)
                }
            }
            d.deserialize_ignored_any(V)
        }
    }
    fn same<T: for<'de> de::Deserialize<'de> + PartialEq + fmt::Debug>(input: &str) {
        let theirs = serde_json::from_str::<T>(input).map_err(|e| e.to_string());
        assert_eq!(from_slice::<T>(input.as_bytes()).map_err(|e| e.to_string()), theirs, "{input}");
    }
    same::<Lenient>("1.5e-30");
    same::<Lenient>("2.5");
    same::<std::collections::BTreeMap<String, Lenient>>(r#"{"a": 1.5e-30, "b": 2}"#);
    same::<Vec<Nothing>>("[,]");
    same::<Vec<Nothing>>("[]");
    same::<std::collections::BTreeMap<Nothing, Nothing>>(r#"{":"",":1}"#);
    same::<std::collections::BTreeMap<UnitKey, u64>>(r#"{"a": 1}"#);
    assert!(serde_json::from_str::<Lenient>("1.5e-30").unwrap().0.is_some(), "the case bites");
}

#[test]
fn deep_nesting_gives_way_beyond_the_bit_stack() {
    for depth in [1, 127, 128, 129, 200, 1000] {
        let skipped = format!("{{\"x\": {}1{}}}", "[".repeat(depth), "]".repeat(depth));
        assert_eq!(fast::<Obj<Probe>>(skipped.as_bytes()).is_some(), depth <= MAX_SKIP_DEPTH as usize, "{depth}");
        agrees(skipped.as_bytes());
        let read = format!("{}1{}", "[".repeat(depth), "]".repeat(depth));
        agrees(read.as_bytes());
    }
}

#[test]
fn find_special_checks_every_offset() {
    for len in 0..40 {
        for at in 0..=len {
            for special in [b'"', b'\\', 0x00, 0x1f] {
                let mut bytes = vec![b'a'; len];
                if at < len {
                    bytes[at] = special;
                }
                let want = if at < len { at } else { len };
                assert_eq!(find_special_words(&bytes, 0), (want, true), "len {len} at {at}");
                // A non-ASCII byte counts only before the special.
                for p in (0..len).filter(|&p| p != at) {
                    let mut bytes = bytes.clone();
                    bytes[p] = 0xc3;
                    assert_eq!(find_special_words(&bytes, 0), (want, p > want), "len {len} at {at}, 0xc3 at {p}");
                }
            }
        }
    }
    // Bytes that look like the specials under a borrow: 0x20, 0x21, 0x23, 0x5b, 0x5d, 0xa2.
    let bytes = [0x20, 0x21, 0x23, 0x5b, 0x5d, 0x7f, 0x20, 0x21, 0x5c];
    assert_eq!(find_special_words(&bytes, 0), (8, true));
}
