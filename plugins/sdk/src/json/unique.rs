//! A [`Value`] parse that refuses an object with the same key twice.
//!
//! JSON leaves duplicate keys to the reader: serde_json keeps the last value, other
//! parsers keep the first or refuse the body. A request whose estimate read one value
//! while the provider acts on another is a way around the estimate, so the estimate
//! reads requests with [`parse_unique`]: one pass, the same `Value` serde_json builds,
//! and an error naming the key where a key repeats.

use super::Value;
use super::value::Element;
use crate::PluginError;

/// Parses a body as a [`Value`] like [`super::parse`], but a key that appears twice in
/// one object is an error (`Malformed`, naming the key).
pub fn parse_unique(body: &[u8]) -> Result<Value, PluginError> {
    super::read::<Element<true>>(body).map(|e| e.0)
}

/// Longest part of a client's string an error message repeats, in characters.
const QUOTE_CHARS: usize = 64;

/// A client-supplied string for an error message: backquoted, escaped (control
/// characters and NUL as `\u{..}`) and cut to 64 characters with `…`.
pub fn quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len().min(QUOTE_CHARS) + 4);
    out.push('`');
    s.chars().take(QUOTE_CHARS).flat_map(char::escape_debug).for_each(|c| out.push(c));
    if s.chars().nth(QUOTE_CHARS).is_some() {
        out.push('…');
    }
    out.push('`');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_serde_json_reads() {
        for body in [
            &br#"{"a":1,"b":[true,null,-2,3.5,"x\u0000y"],"c":{"d":{}},"e":18446744073709551615}"#[..],
            b"[]",
            b"7",
            br#""s""#,
            br#"{"n":1e400}"#,
        ] {
            let ours = parse_unique(body);
            let theirs = serde_json::from_slice::<Value>(body);
            match (ours, theirs) {
                (Ok(a), Ok(b)) => assert_eq!(a, b),
                (Err(_), Err(_)) => {}
                (a, b) => panic!("{}: {a:?} vs {b:?}", String::from_utf8_lossy(body)),
            }
        }
    }

    #[test]
    fn refuses_a_repeated_key_at_any_depth() {
        for body in [
            &br#"{"n":1,"n":100}"#[..],
            br#"{"a":{"n":1,"m":2,"n":3}}"#,
            br#"{"a":[{"x":1},{"y":2,"y":2}]}"#,
            br#"{"a\u0062":1,"ab":2}"#,
        ] {
            let Err(PluginError::Malformed(m)) = parse_unique(body) else {
                panic!("{} was accepted", String::from_utf8_lossy(body))
            };
            assert!(m.contains("appears twice"), "{m}");
        }
        assert!(parse_unique(br#"{"a":{"n":1},"b":{"n":1}}"#).is_ok());
    }

    #[test]
    fn quotes_hostile_strings_short_and_escaped() {
        assert_eq!(quoted("web_search"), "`web_search`");
        assert_eq!(quoted("a\0b\n"), "`a\\0b\\n`");
        let long = "x".repeat(3000);
        let q = quoted(&long);
        assert_eq!(q.chars().count(), QUOTE_CHARS + 3);
        assert!(q.ends_with("…`"));
    }
}
