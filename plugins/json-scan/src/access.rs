//! Object entries, array elements and object keys at a read level.

use crate::string::Text;
use crate::{GiveWay, Result, Scanner};
use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::forward_to_deserialize_any;

/// The entries of a read object.
pub(crate) struct Entries<'a, 'de> {
    pub(crate) scanner: &'a mut Scanner<'de>,
    pub(crate) first: bool,
}

impl<'de> MapAccess<'de> for Entries<'_, 'de> {
    type Error = GiveWay;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>> {
        let s = &mut *self.scanner;
        match s.peek_ws() {
            // The caller consumes the `}`.
            Some(b'}') => return Ok(None),
            Some(b'"') if self.first => {}
            Some(b',') if !self.first => {
                s.pos += 1;
                if s.peek_ws() != Some(b'"') {
                    return s.give_way();
                }
            }
            _ => return s.give_way(),
        }
        self.first = false;
        // The key consumes its opening quote (as serde_json's does): a seed that reads
        // nothing leaves it for the `:` check to refuse.
        let r = seed.deserialize(Key { scanner: &mut *s }).map(Some);
        s.noted(r)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value> {
        let s = &mut *self.scanner;
        let r = s.expect(b':').and_then(|()| seed.deserialize(&mut *s));
        s.noted(r)
    }
}

/// The elements of a read array.
pub(crate) struct Elements<'a, 'de> {
    pub(crate) scanner: &'a mut Scanner<'de>,
    pub(crate) first: bool,
}

impl<'de> SeqAccess<'de> for Elements<'_, 'de> {
    type Error = GiveWay;

    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>> {
        let s = &mut *self.scanner;
        match s.peek_ws() {
            Some(b']') => return Ok(None),
            Some(b',') if !self.first => {
                s.pos += 1;
                // A trailing comma, whatever the seed would read.
                if matches!(s.peek_ws(), Some(b']') | None) {
                    return s.give_way();
                }
            }
            Some(_) if self.first => {}
            _ => return s.give_way(),
        }
        self.first = false;
        let r = seed.deserialize(&mut *s).map(Some);
        s.noted(r)
    }
}

/// An object key at a read level: always read as a string (unescaped, UTF-8 checked),
/// as serde_json does even when the key is ignored.
struct Key<'a, 'de> {
    scanner: &'a mut Scanner<'de>,
}

impl Key<'_, '_> {
    /// Gives way from a serde entry point (see [`Scanner::noted`]).
    fn give_way<T>(self) -> Result<T> {
        self.scanner.give_way()
    }
}

impl<'de> Deserializer<'de> for Key<'_, 'de> {
    type Error = GiveWay;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        let s = self.scanner;
        let r = match s.expect(b'"').and_then(|()| s.read_str()) {
            Ok(Text::Borrowed(text)) => visitor.visit_borrowed_str(text),
            Ok(Text::Copied(text)) => visitor.visit_str(text),
            Err(e) => Err(e),
        };
        s.noted(r)
    }

    forward_to_deserialize_any! { str string identifier ignored_any }

    // Keys read as numbers, bools, options, containers or enums are serde_json's to read.
    give_way! {
        deserialize_bool(); deserialize_i8(); deserialize_i16(); deserialize_i32(); deserialize_i64();
        deserialize_u8(); deserialize_u16(); deserialize_u32(); deserialize_u64(); deserialize_f32();
        deserialize_f64(); deserialize_char(); deserialize_bytes(); deserialize_byte_buf();
        deserialize_option(); deserialize_unit(); deserialize_unit_struct(&'static str);
        deserialize_newtype_struct(&'static str); deserialize_seq(); deserialize_tuple(usize);
        deserialize_tuple_struct(&'static str, usize); deserialize_map();
        deserialize_struct(&'static str, &'static [&'static str]);
        deserialize_enum(&'static str, &'static [&'static str]); deserialize_i128(); deserialize_u128();
    }
}
