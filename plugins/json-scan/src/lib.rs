//! A JSON deserializer for the hot path that gives way to serde_json on anything unusual.
//!
//! [`from_slice`] reads a body with a small deserializer written for what provider
//! responses hold — objects, short ASCII keys, long strings to skip, counts — and, the
//! moment it meets anything else (a number with more digits than an `f64` holds exactly
//! or an exponent beyond ±22, an escaped key, invalid UTF-8 in a string it reads, deep
//! nesting, any syntax error), gives up and returns what `serde_json::from_slice`
//! returns for the whole body. So the result is always exactly serde_json's: the fast
//! path may only *agree* with it, never differ (the differential tests in `src/tests`
//! hold it to that), and every error message is serde_json's own. A `T` that catches one
//! of the fast path's errors and carries on still ends in serde_json: the scanner
//! remembers every error that passes out of it.
//!
//! Where the time goes otherwise: serde_json validates every key as UTF-8 on its own
//! and checks the remaining recursion depth, the input position and a scratch buffer
//! around every token. Here keys are checked for ASCII in the loop that finds their end,
//! strings and whitespace runs are scanned sixteen bytes at a time with wasm SIMD (eight,
//! natively), and skipped values are walked with a bit stack instead of a heap-allocated one.
//!
//! Mirrored serde_json behaviour (1.0.x, `SliceRead`):
//! - whitespace is space, `\n`, `\r`, `\t`; nothing may follow the value but whitespace;
//! - a value that is read gets its strings unescaped and UTF-8 checked, numbers as
//!   `u64` (non-negative integers), `i64` (negative ones; `-0` and those below
//!   `i64::MIN` are `f64`) or `f64` (with a fraction or exponent, computed with the same
//!   operations serde_json uses, so the bits are the same);
//! - a skipped value (`IgnoredAny`) is checked for syntax only: its strings may hold
//!   any bytes but control characters, its `\u` escapes any four hex digits;
//! - object keys at a read level are unescaped and UTF-8 checked even when skipped
//!   (serde_json reads them as strings), keys inside a skipped value are not.
//!
//! The modules: `bytes` finds the end of a string's plain run and of a whitespace run
//! (eight bytes per step natively, sixteen with wasm SIMD under `+simd128`); `string`,
//! `number` and `skip` read or skip one token or value; `deserializer` is the serde
//! `Deserializer`, `access` its object entries, array elements and keys.

use serde::de;
use std::fmt;

/// Implements `Deserializer` methods (taking the listed arguments before the visitor) as
/// "give way": the type they ask for is serde_json's to read.
macro_rules! give_way {
    ($($method:ident($($arg:ty),*);)*) => {
        $(fn $method<V: Visitor<'de>>(self, $(_: $arg,)* _: V) -> Result<V::Value> {
            self.give_way()
        })*
    };
}

mod access;
mod bytes;
mod deserializer;
mod number;
mod skip;
mod string;
#[cfg(test)]
mod tests;

/// Reads `T` from a JSON body; the result is always what `serde_json::from_slice`
/// gives (see the crate docs).
pub fn from_slice<'de, T: de::Deserialize<'de>>(bytes: &'de [u8]) -> serde_json::Result<T> {
    match fast_path(bytes) {
        Some(value) => Ok(value),
        None => serde_json::from_slice(bytes),
    }
}

/// The fast path alone: `None` where it gave way — also when `T` caught an error of
/// ours and went on (`gave_way`), since the position may then be mid-token.
fn fast_path<'de, T: de::Deserialize<'de>>(bytes: &'de [u8]) -> Option<T> {
    let mut scanner = Scanner { bytes, pos: 0, depth: 0, scratch: Vec::new(), gave_way: false };
    let value = T::deserialize(&mut scanner).ok()?;
    (!scanner.gave_way && scanner.end().is_ok()).then_some(value)
}

/// The fast path met something it leaves to serde_json.
#[derive(Debug)]
struct GiveWay;

impl fmt::Display for GiveWay {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("left to serde_json")
    }
}

impl std::error::Error for GiveWay {}

impl de::Error for GiveWay {
    fn custom<T: fmt::Display>(_: T) -> Self {
        GiveWay
    }
}

type Result<T> = std::result::Result<T, GiveWay>;

/// The deserializer: the body, a position in it, and scratch space for unescaping.
struct Scanner<'de> {
    bytes: &'de [u8],
    pos: usize,
    /// Read containers currently open.
    depth: u32,
    scratch: Vec<u8>,
    /// An error passed out through one of our serde entry points (see [`Scanner::noted`]).
    gave_way: bool,
}

impl Scanner<'_> {
    /// Skips whitespace; the next byte, not consumed.
    #[inline(always)]
    fn peek_ws(&mut self) -> Option<u8> {
        match self.bytes.get(self.pos) {
            Some(&b) if !bytes::is_ws(b) => Some(b),
            _ => self.skip_ws(),
        }
    }

    /// [`Self::peek_ws`] past a run of whitespace (pretty-printed indentation).
    fn skip_ws(&mut self) -> Option<u8> {
        self.pos = bytes::skip_ws_run(self.bytes, self.pos);
        self.bytes.get(self.pos).copied()
    }

    /// Skips whitespace and consumes `want`.
    #[inline(always)]
    fn expect(&mut self, want: u8) -> Result<()> {
        if self.peek_ws() != Some(want) {
            return Err(GiveWay);
        }
        self.pos += 1;
        Ok(())
    }

    /// Only whitespace is left.
    fn end(&mut self) -> Result<()> {
        match self.peek_ws() {
            None => Ok(()),
            Some(_) => Err(GiveWay),
        }
    }

    /// Consumes the rest of a literal whose first byte is at `pos`.
    fn literal(&mut self, word: &[u8]) -> Result<()> {
        if !self.bytes[self.pos..].starts_with(word) {
            return Err(GiveWay);
        }
        self.pos += word.len();
        Ok(())
    }
}
