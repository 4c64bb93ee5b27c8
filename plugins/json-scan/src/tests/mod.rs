//! Differential tests: whatever the fast path reads, serde_json reads the same, and
//! [`from_slice`] is serde_json's answer; here on provider bodies, in `cases` on edge
//! cases, in `random` on random documents and their mutations.

use crate::{fast_path, from_slice};
use serde::de::{self, MapAccess};
use serde_json::Value;
use xjp_plugin_sdk::json::lenient::{Count, Fields, NonNull, Obj, Skip, Str, StrLen, skip, value};

mod cases;
mod random;

/// The fast path alone: `None` where it gives way.
fn fast<'de, T: de::Deserialize<'de>>(bytes: &'de [u8]) -> Option<T> {
    fast_path(bytes)
}

/// A reader with every lenient field type, as plugins use them.
#[derive(Debug, Default, PartialEq)]
struct Probe<'a> {
    count: Option<u64>,
    text: Option<String>,
    borrowed: Option<&'a str>,
    len: Option<u64>,
    present: bool,
    nested: Option<Box<Probe<'a>>>,
    keys: usize,
}

impl<'de> Fields<'de> for Probe<'de> {
    fn field<A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> std::result::Result<(), A::Error> {
        self.keys += 1;
        match key {
            "n" | "count" => self.count = value::<Count, _>(map)?.0,
            "s" | "model" => {
                let s: Str = value(map)?;
                self.borrowed = match &s.0 {
                    Some(std::borrow::Cow::Borrowed(b)) => Some(b),
                    _ => None,
                };
                self.text = s.0.map(|s| s.into_owned());
            }
            "len" | "content" => self.len = value::<StrLen, _>(map)?.0,
            "error" => self.present = value::<NonNull, _>(map)?.0,
            "o" | "usage" => self.nested = value::<Obj<Probe>, _>(map)?.0.map(Box::new),
            _ => skip(map)?,
        }
        Ok(())
    }
}

/// Whatever the fast path reads, serde_json reads the same; and `from_slice` is
/// serde_json's answer, error message included.
fn agrees(bytes: &[u8]) {
    let text = String::from_utf8_lossy(bytes);
    if let Some(v) = fast::<Value>(bytes) {
        assert_eq!(serde_json::from_slice::<Value>(bytes).ok(), Some(v), "Value of {text:?}");
    }
    if fast::<Skip>(bytes).is_some() {
        assert!(serde_json::from_slice::<Skip>(bytes).is_ok(), "IgnoredAny of {text:?}");
    }
    if let Some(p) = fast::<Obj<Probe>>(bytes) {
        assert_eq!(serde_json::from_slice::<Obj<Probe>>(bytes).ok(), Some(p), "Probe of {text:?}");
    }
    let theirs = serde_json::from_slice::<Obj<Probe>>(bytes).map_err(|e| e.to_string());
    assert_eq!(from_slice::<Obj<Probe>>(bytes).map_err(|e| e.to_string()), theirs, "{text:?}");
    let theirs = serde_json::from_slice::<Value>(bytes).map_err(|e| e.to_string());
    assert_eq!(from_slice::<Value>(bytes).map_err(|e| e.to_string()), theirs, "{text:?}");
}

#[test]
fn provider_bodies_take_the_fast_path() {
    let body = br#"{
  "id": "chatcmpl-1", "object": "chat.completion", "created": 1741570283,
  "model": "gpt-4o-2024-08-06",
  "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi \"there\"\n\u00e9\ud83d\ude00",
    "refusal": null, "annotations": []}, "logprobs": null, "finish_reason": "stop"}],
  "usage": {"prompt_tokens": 412, "completion_tokens": 187, "total_tokens": 599,
    "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0}, "cost": 0.0133203}
}"#;
    let p = fast::<Obj<Probe>>(body).expect("fast path").0.expect("an object");
    assert_eq!(p.text.as_deref(), Some("gpt-4o-2024-08-06"));
    assert_eq!(p.borrowed, Some("gpt-4o-2024-08-06"), "unescaped strings are borrowed");
    let usage = p.nested.expect("usage");
    assert_eq!(usage.keys, 5);
    assert!(fast::<Value>(body).is_some());
    assert!(fast::<Skip>(body).is_some());
    agrees(body);
    // Read strings with escapes are unescaped; the float reads as serde_json's.
    let v = fast::<Value>(body).unwrap();
    assert_eq!(v["choices"][0]["message"]["content"], "Hi \"there\"\n\u{e9}\u{1f600}");
    assert_eq!(v["usage"]["cost"].as_f64(), Some(0.0133203));
}

#[test]
fn recorded_provider_bodies_take_the_fast_path() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures");
    let mut read = 0;
    for provider in std::fs::read_dir(&root).unwrap() {
        let dir = provider.unwrap().path();
        if !dir.is_dir() {
            continue;
        }
        for file in std::fs::read_dir(&dir).unwrap() {
            let path = file.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if !name.ends_with(".json") || name.ends_with(".case.json") {
                continue;
            }
            let bytes = std::fs::read(&path).unwrap();
            agrees(&bytes);
            if serde_json::from_slice::<Skip>(&bytes).is_err() {
                continue; // a cut stream
            }
            // What plugins read of a body (a few fields, the rest skipped) reads fast.
            // (A whole `Value` may give way: Gemini's 17-digit `avgLogprobs`.)
            assert!(fast::<Obj<Probe>>(&bytes).is_some(), "{name} gave way");
            assert!(fast::<Skip>(&bytes).is_some(), "{name} gave way when skipped");
            read += 1;
        }
    }
    assert!(read >= 20, "only {read} recorded bodies under {}", root.display());
}
