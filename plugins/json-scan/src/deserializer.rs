//! The serde `Deserializer`: reads what it knows, gives way on the rest, and notes every
//! error it hands out.

use crate::access::{Elements, Entries};
use crate::number::Number;
use crate::string::Text;
use crate::{GiveWay, Result, Scanner};
use serde::de::{Deserializer, Visitor};

/// Nesting of read (visited) containers the fast path follows; serde_json's limit is 128.
const MAX_READ_DEPTH: u32 = 100;

impl<'de> Scanner<'de> {
    /// Opens a read container.
    fn enter(&mut self) -> Result<()> {
        if self.depth == MAX_READ_DEPTH {
            return Err(GiveWay);
        }
        self.depth += 1;
        self.pos += 1;
        Ok(())
    }

    /// Visits the value at `pos` when its first byte satisfies `accept`, else gives way
    /// (serde_json would refuse the type; it gets to say so).
    fn any_if<V: Visitor<'de>>(&mut self, accept: fn(u8) -> bool, visitor: V) -> Result<V::Value> {
        match self.peek_ws() {
            Some(b) if accept(b) => self.deserialize_any(visitor),
            _ => self.give_way(),
        }
    }

    /// `r`, remembering when it is an error. Every serde entry point (the
    /// `Deserializer`, `MapAccess` and `SeqAccess` methods) passes its result through
    /// here, so a `T` that swallows an error still ends in serde_json.
    pub(crate) fn noted<T>(&mut self, r: Result<T>) -> Result<T> {
        self.gave_way |= r.is_err();
        r
    }

    /// Gives way from a serde entry point.
    pub(crate) fn give_way<T>(&mut self) -> Result<T> {
        self.noted(Err(GiveWay))
    }

    /// [`Deserializer::deserialize_any`], before [`Self::noted`].
    fn any<V: Visitor<'de>>(&mut self, visitor: V) -> Result<V::Value> {
        match self.peek_ws().ok_or(GiveWay)? {
            b'"' => {
                self.pos += 1;
                match self.read_str()? {
                    Text::Borrowed(s) => visitor.visit_borrowed_str(s),
                    Text::Copied(s) => visitor.visit_str(s),
                }
            }
            b'0'..=b'9' => match self.read_number()? {
                Number::U64(n) => visitor.visit_u64(n),
                Number::F64(f) => visitor.visit_f64(f),
            },
            b'n' => {
                self.literal(b"null")?;
                visitor.visit_unit()
            }
            b't' => {
                self.literal(b"true")?;
                visitor.visit_bool(true)
            }
            b'f' => {
                self.literal(b"false")?;
                visitor.visit_bool(false)
            }
            b'{' => {
                self.enter()?;
                let value = visitor.visit_map(Entries { scanner: &mut *self, first: true })?;
                self.depth -= 1;
                self.expect(b'}')?;
                Ok(value)
            }
            b'[' => {
                self.enter()?;
                let value = visitor.visit_seq(Elements { scanner: &mut *self, first: true })?;
                self.depth -= 1;
                self.expect(b']')?;
                Ok(value)
            }
            b'-' => {
                self.pos += 1;
                match self.read_number()? {
                    // serde_json: `-0` and integers below i64::MIN are floats.
                    Number::U64(n) => match (n as i64).wrapping_neg() {
                        negative if negative < 0 => visitor.visit_i64(negative),
                        _ => visitor.visit_f64(-(n as f64)),
                    },
                    Number::F64(f) => visitor.visit_f64(-f),
                }
            }
            _ => Err(GiveWay),
        }
    }
}

impl<'de> Deserializer<'de> for &mut Scanner<'de> {
    type Error = GiveWay;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        let r = self.any(visitor);
        self.noted(r)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        let r = self.skip_value().and_then(|()| visitor.visit_unit());
        self.noted(r)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        let r = if self.peek_ws() == Some(b'n') {
            self.literal(b"null").and_then(|()| visitor.visit_none())
        } else {
            visitor.visit_some(&mut *self)
        };
        self.noted(r)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(self, name: &'static str, visitor: V) -> Result<V::Value> {
        // serde_json's private names (`RawValue`, arbitrary-precision numbers) are its own.
        if name.starts_with('$') {
            return self.give_way();
        }
        let r = visitor.visit_newtype_struct(&mut *self);
        self.noted(r)
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        self.any_if(|b| b == b't' || b == b'f', visitor)
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        self.any_if(|b| b == b'"', visitor)
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        self.deserialize_str(visitor)
    }

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        self.deserialize_str(visitor)
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        self.deserialize_str(visitor)
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        self.any_if(|b| b == b'n', visitor)
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(self, _: &'static str, visitor: V) -> Result<V::Value> {
        self.deserialize_unit(visitor)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        self.any_if(|b| b == b'[', visitor)
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, _: usize, visitor: V) -> Result<V::Value> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(self, _: &'static str, _: usize, visitor: V) -> Result<V::Value> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        self.any_if(|b| b == b'{', visitor)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value> {
        self.any_if(|b| b == b'{' || b == b'[', visitor)
    }

    fn deserialize_u64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        self.any_if(|b| b.is_ascii_digit() || b == b'-', visitor)
    }

    fn deserialize_i64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        self.deserialize_u64(visitor)
    }

    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        self.deserialize_u64(visitor)
    }

    // Narrower numbers, bytes and enums are serde_json's to read.
    give_way! {
        deserialize_i8(); deserialize_i16(); deserialize_i32(); deserialize_u8(); deserialize_u16();
        deserialize_u32(); deserialize_f32(); deserialize_bytes(); deserialize_byte_buf();
        deserialize_enum(&'static str, &'static [&'static str]); deserialize_i128(); deserialize_u128();
    }
}
