//! docs/config.md documents every config key and only real ones: the keys are read from the
//! `Config` type itself (its serde field lists), so a new key without a line in the docs, or
//! a line for a key that is gone, fails here.

use serde::de::{self, DeserializeSeed, Deserializer, IntoDeserializer, MapAccess, SeqAccess, Visitor};
use std::cell::RefCell;
use std::collections::BTreeSet;

type Error = de::value::Error;

/// A deserializer that hands every struct all its fields (with made-up leaf values) and
/// records their paths: `server.listen`, `providers.<name>.base_url`, `models[].name`.
struct Probe<'a> {
    path: String,
    keys: &'a RefCell<BTreeSet<String>>,
}

impl<'a> Probe<'a> {
    fn child(&self, name: &str) -> Probe<'a> {
        let path = if self.path.is_empty() { name.to_string() } else { format!("{}.{name}", self.path) };
        Probe { path, keys: self.keys }
    }
}

struct Fields<'a> {
    parent: Probe<'a>,
    names: std::iter::Copied<std::slice::Iter<'static, &'static str>>,
    current: Option<&'static str>,
}

impl<'de> MapAccess<'de> for Fields<'_> {
    type Error = Error;
    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, Error> {
        match self.names.next() {
            Some(name) => {
                self.current = Some(name);
                seed.deserialize(name.into_deserializer()).map(Some)
            }
            None => Ok(None),
        }
    }
    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        let name = self.current.take().expect("a key first");
        seed.deserialize(self.parent.child(name))
    }
}

/// One element (a sequence) or one `<name>` entry (a map).
struct One<'a> {
    item: Option<Probe<'a>>,
}

impl<'de> SeqAccess<'de> for One<'_> {
    type Error = Error;
    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>, Error> {
        self.item.take().map(|p| seed.deserialize(p)).transpose()
    }
}

impl<'de> MapAccess<'de> for One<'_> {
    type Error = Error;
    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, Error> {
        if self.item.is_none() {
            return Ok(None);
        }
        seed.deserialize("<name>".into_deserializer()).map(Some)
    }
    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        seed.deserialize(self.item.take().expect("a key first"))
    }
}

impl<'de> Deserializer<'de> for Probe<'_> {
    type Error = Error;

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        for f in fields {
            self.keys.borrow_mut().insert(self.child(f).path);
        }
        visitor.visit_map(Fields { parent: self, names: fields.iter().copied(), current: None })
    }
    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let item = self.child("<name>");
        visitor.visit_map(One { item: Some(item) })
    }
    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let item = Probe { path: format!("{}[]", self.path), keys: self.keys };
        visitor.visit_seq(One { item: Some(item) })
    }
    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_some(self)
    }
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_enum(variants[0].into_deserializer())
    }
    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_bool(false)
    }
    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_f64(0.5)
    }
    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_str("x")
    }
    fn deserialize_u64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_u64(1)
    }
    fn deserialize_u32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_u64(1)
    }
    fn deserialize_i64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_u64(1)
    }
    fn deserialize_newtype_struct<V: Visitor<'de>>(self, _: &'static str, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_newtype_struct(self)
    }
    serde::forward_to_deserialize_any! {
        i8 i16 i32 i128 u8 u16 u128 f32 char str string bytes byte_buf unit unit_struct tuple tuple_struct
        identifier ignored_any
    }
}

/// `fallback_price` has the keys of `price`, documented once there.
const SAME_AS_PRICE: &str = "models[].fallback_price";

/// Every key of `gateway.toml` that holds a value (tables are headings in the docs), as the
/// `Config` type declares it.
fn config_keys() -> BTreeSet<String> {
    let keys = RefCell::new(BTreeSet::new());
    let _: xjp_gateway::config::Config =
        serde::Deserialize::deserialize(Probe { path: String::new(), keys: &keys }).expect("the probe fills Config");
    let all = keys.into_inner();
    let is_table = |k: &String| all.iter().any(|o| o.starts_with(&format!("{k}.")) || o.starts_with(&format!("{k}[]")));
    all.iter()
        .filter(|k| !k.starts_with(&format!("{SAME_AS_PRICE}.")))
        .filter(|k| k.as_str() == SAME_AS_PRICE || k.as_str() == "catalog.openrouter_sync" || !is_table(k))
        .cloned()
        .collect()
}

/// The first code span of each table row of docs/config.md (`| \`key\` | default | … |`).
fn documented_keys(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split_once('`').map(|(key, _)| key.to_string()))
        .collect()
}

#[test]
fn docs_config_md_lists_every_key_and_no_other() {
    let keys = config_keys();
    assert!(keys.contains("server.listen") && keys.contains("providers.<name>.base_url"), "{keys:?}");
    assert!(keys.contains("models[].price.long_context.threshold_tokens"), "{keys:?}");
    assert!(!keys.contains("server") && !keys.contains("models[].price"), "{keys:?}");
    let text = std::fs::read_to_string(super::common::root().join("docs/config.md")).unwrap();
    let documented = documented_keys(&text);
    let missing: Vec<_> = keys.difference(&documented).collect();
    let stale: Vec<_> = documented.difference(&keys).collect();
    assert!(missing.is_empty(), "keys without a row in docs/config.md: {missing:#?}");
    assert!(stale.is_empty(), "rows in docs/config.md for keys that do not exist: {stale:#?}");
}
