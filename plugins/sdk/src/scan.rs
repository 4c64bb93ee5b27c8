//! A JSON deserializer for the hot path that gives way to serde_json on anything unusual.
//!
//! [`from_slice`] reads a body with a small deserializer written for what provider
//! responses hold — objects, short ASCII keys, long strings to skip, counts — and, the
//! moment it meets anything else (a number with more digits than an `f64` holds exactly
//! or an exponent beyond ±22, an escaped key, invalid UTF-8 in a string it reads, deep
//! nesting, any syntax error), gives up and returns what `serde_json::from_slice`
//! returns for the whole body. So the result is always exactly serde_json's: the fast
//! path may only *agree* with it, never differ (the differential tests below hold it to
//! that), and every error message is serde_json's own. A `T` that catches one of the
//! fast path's errors and carries on still ends in serde_json: the scanner remembers
//! every error that passes out of it.
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

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::forward_to_deserialize_any;
use std::fmt;

/// Reads `T` from a JSON body; the result is always what `serde_json::from_slice`
/// gives (see the module docs).
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

/// Nesting of read (visited) containers the fast path follows; serde_json's limit is 128.
const MAX_READ_DEPTH: u32 = 100;
/// Nesting inside one skipped value the fast path follows (one bit each in a `u128`).
const MAX_SKIP_DEPTH: u32 = 128;

/// `10^0 ..= 10^22`: the powers of ten an `f64` holds exactly.
const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20,
    1e21, 1e22,
];

/// Implements `Deserializer` methods (taking the listed arguments before the visitor) as
/// "give way": the type they ask for is serde_json's to read.
macro_rules! give_way {
    ($($method:ident($($arg:ty),*);)*) => {
        $(fn $method<V: Visitor<'de>>(self, $(_: $arg,)* _: V) -> Result<V::Value> {
            self.give_way()
        })*
    };
}

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

/// A string read from the body: borrowed when it had no escapes.
enum Text<'de, 's> {
    Borrowed(&'de str),
    Copied(&'s str),
}

/// A number as serde_json's `deserialize_any` hands it to a visitor.
enum Number {
    U64(u64),
    F64(f64),
}

/// Whether `b` ends the plain run of a JSON string: `"`, `\` or a control character.
fn is_special(b: u8) -> bool {
    b == b'"' || b == b'\\' || b < 0x20
}

/// The index of the first byte at or after `i` that [`is_special`], or `bytes.len()`;
/// also whether every byte before it was ASCII. Eight bytes per step, with the
/// zero-byte trick (the lowest flagged byte is always a true match).
#[cfg_attr(all(target_arch = "wasm32", target_feature = "simd128"), inline(never))]
fn find_special_words(bytes: &[u8], mut i: usize) -> (usize, bool) {
    const ONES: u64 = u64::MAX / 255;
    const HIGH: u64 = ONES << 7;
    let mut high_bits = 0;
    while let Some(chunk) = bytes.get(i..i + 8) {
        let w = u64::from_le_bytes(chunk.try_into().expect("eight bytes"));
        let quote = w ^ (ONES * u64::from(b'"'));
        let backslash = w ^ (ONES * u64::from(b'\\'));
        let found = (w.wrapping_sub(ONES * 0x20) | quote.wrapping_sub(ONES) | backslash.wrapping_sub(ONES)) & !w & HIGH;
        if found != 0 {
            let at = i + found.trailing_zeros() as usize / 8;
            let ascii = high_bits & HIGH == 0 && bytes[i..at].is_ascii();
            return (at, ascii);
        }
        high_bits |= w;
        i += 8;
    }
    let mut ascii = high_bits & HIGH == 0;
    while let Some(&b) = bytes.get(i) {
        if is_special(b) {
            break;
        }
        ascii &= b.is_ascii();
        i += 1;
    }
    (i, ascii)
}

#[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
use find_special_words as find_special;

/// [`find_special_words`] sixteen bytes per step with wasm SIMD (plugins are built with
/// `+simd128`, see `.cargo/config.toml`): a string's plain run costs about a sixth.
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
#[inline(always)]
fn find_special(bytes: &[u8], mut i: usize) -> (usize, bool) {
    use core::arch::wasm32::{u8x16_bitmask, u8x16_eq, u8x16_lt, u8x16_splat, v128_any_true, v128_load, v128_or};
    let mut high = 0;
    while let Some(chunk) = bytes.get(i..i + 16) {
        // SAFETY: `chunk` is 16 readable bytes, and `v128_load` needs no alignment.
        let v = unsafe { v128_load(chunk.as_ptr().cast()) };
        let special = v128_or(
            v128_or(u8x16_eq(v, u8x16_splat(b'"')), u8x16_eq(v, u8x16_splat(b'\\'))),
            u8x16_lt(v, u8x16_splat(0x20)),
        );
        let non_ascii = u8x16_bitmask(v);
        if v128_any_true(special) {
            let offset = u8x16_bitmask(special).trailing_zeros();
            let before = non_ascii & ((1u16 << offset) - 1);
            return (i + offset as usize, high | before == 0);
        }
        high |= non_ascii;
        i += 16;
    }
    let (at, ascii) = find_special_words(bytes, i);
    (at, ascii && high == 0)
}

/// JSON whitespace.
fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\n' | b'\r' | b'\t')
}

/// The index of the first byte at or after `i` that is not whitespace, or `bytes.len()`.
#[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
fn skip_ws_run(bytes: &[u8], mut i: usize) -> usize {
    while bytes.get(i).is_some_and(|&b| is_ws(b)) {
        i += 1;
    }
    i
}

/// [`skip_ws_run`] sixteen bytes per step.
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
fn skip_ws_run(bytes: &[u8], mut i: usize) -> usize {
    use core::arch::wasm32::{u8x16_bitmask, u8x16_eq, u8x16_splat, v128_load, v128_or};
    while let Some(chunk) = bytes.get(i..i + 16) {
        // SAFETY: `chunk` is 16 readable bytes, and `v128_load` needs no alignment.
        let v = unsafe { v128_load(chunk.as_ptr().cast()) };
        let ws = v128_or(
            v128_or(u8x16_eq(v, u8x16_splat(b' ')), u8x16_eq(v, u8x16_splat(b'\n'))),
            v128_or(u8x16_eq(v, u8x16_splat(b'\r')), u8x16_eq(v, u8x16_splat(b'\t'))),
        );
        let other = !u8x16_bitmask(ws);
        if other != 0 {
            return i + other.trailing_zeros() as usize;
        }
        i += 16;
    }
    while bytes.get(i).is_some_and(|&b| is_ws(b)) {
        i += 1;
    }
    i
}

/// The value of one hex digit.
fn hex(b: u8) -> Option<u16> {
    (b as char).to_digit(16).map(|d| d as u16)
}

impl<'de> Scanner<'de> {
    /// Skips whitespace; the next byte, not consumed.
    #[inline(always)]
    fn peek_ws(&mut self) -> Option<u8> {
        match self.bytes.get(self.pos) {
            Some(&b) if !is_ws(b) => Some(b),
            _ => self.skip_ws(),
        }
    }

    /// [`Self::peek_ws`] past a run of whitespace (pretty-printed indentation).
    fn skip_ws(&mut self) -> Option<u8> {
        self.pos = skip_ws_run(self.bytes, self.pos);
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

    /// Skips a string whose opening quote was consumed: any bytes but control
    /// characters, escapes checked for syntax (`\u` with any four hex digits).
    fn skip_str(&mut self) -> Result<()> {
        loop {
            let (at, _) = find_special(self.bytes, self.pos);
            match self.bytes.get(at) {
                Some(b'"') => {
                    self.pos = at + 1;
                    return Ok(());
                }
                Some(b'\\') => {
                    let width = match self.bytes.get(at + 1) {
                        Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => 2,
                        Some(b'u')
                            if self.bytes.get(at + 2..at + 6).is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) =>
                        {
                            6
                        }
                        _ => return Err(GiveWay),
                    };
                    self.pos = at + width;
                }
                _ => return Err(GiveWay),
            }
        }
    }

    /// Reads a string whose opening quote was consumed, unescaped and UTF-8 checked.
    fn read_str<'s>(&'s mut self) -> Result<Text<'de, 's>> {
        let start = self.pos;
        let (at, ascii) = find_special(self.bytes, start);
        if self.bytes.get(at) == Some(&b'"') {
            self.pos = at + 1;
            let raw = &self.bytes[start..at];
            if ascii {
                debug_assert!(raw.is_ascii());
                // SAFETY: every byte of `raw` is ASCII (`find_special` checked), so it is UTF-8.
                return Ok(Text::Borrowed(unsafe { std::str::from_utf8_unchecked(raw) }));
            }
            return std::str::from_utf8(raw).map(Text::Borrowed).map_err(|_| GiveWay);
        }
        self.read_escaped_str(start)
    }

    /// [`Self::read_str`] of a string with escapes, from its first byte at `start`.
    #[cold]
    fn read_escaped_str<'s>(&'s mut self, start: usize) -> Result<Text<'de, 's>> {
        self.scratch.clear();
        self.pos = start;
        loop {
            let (at, _) = find_special(self.bytes, self.pos);
            self.scratch.extend_from_slice(&self.bytes[self.pos..at]);
            match self.bytes.get(at) {
                Some(b'"') => {
                    self.pos = at + 1;
                    return std::str::from_utf8(&self.scratch).map(Text::Copied).map_err(|_| GiveWay);
                }
                Some(b'\\') => {
                    self.pos = at + 1;
                    self.unescape()?;
                }
                _ => return Err(GiveWay),
            }
        }
    }

    /// Appends the escape after a consumed `\` to the scratch space. Lone surrogates
    /// (which serde_json refuses in a read string) give way.
    fn unescape(&mut self) -> Result<()> {
        let b = *self.bytes.get(self.pos).ok_or(GiveWay)?;
        self.pos += 1;
        let plain = match b {
            b'"' => b'"',
            b'\\' => b'\\',
            b'/' => b'/',
            b'b' => 0x08,
            b'f' => 0x0c,
            b'n' => b'\n',
            b'r' => b'\r',
            b't' => b'\t',
            b'u' => {
                let high = self.hex4()?;
                let code = match high {
                    0xD800..=0xDBFF => {
                        if self.bytes.get(self.pos..self.pos + 2) != Some(b"\\u") {
                            return Err(GiveWay);
                        }
                        self.pos += 2;
                        let low = self.hex4()?;
                        if !(0xDC00..=0xDFFF).contains(&low) {
                            return Err(GiveWay);
                        }
                        0x1_0000 + ((u32::from(high) - 0xD800) << 10 | (u32::from(low) - 0xDC00))
                    }
                    0xDC00..=0xDFFF => return Err(GiveWay),
                    _ => u32::from(high),
                };
                let c = char::from_u32(code).ok_or(GiveWay)?;
                self.scratch.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
                return Ok(());
            }
            _ => return Err(GiveWay),
        };
        self.scratch.push(plain);
        Ok(())
    }

    /// Four hex digits.
    fn hex4(&mut self) -> Result<u16> {
        let digits = self.bytes.get(self.pos..self.pos + 4).ok_or(GiveWay)?;
        let mut n = 0;
        for &d in digits {
            n = n << 4 | hex(d).ok_or(GiveWay)?;
        }
        self.pos += 4;
        Ok(n)
    }

    /// Digits from `pos`; how many.
    fn digits(&mut self) -> usize {
        let start = self.pos;
        while self.bytes.get(self.pos).is_some_and(u8::is_ascii_digit) {
            self.pos += 1;
        }
        self.pos - start
    }

    /// Skips a number starting at `pos`, checking serde_json's grammar:
    /// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`.
    fn skip_number(&mut self) -> Result<()> {
        if self.bytes.get(self.pos) == Some(&b'-') {
            self.pos += 1;
        }
        match self.bytes.get(self.pos) {
            Some(b'0') => {
                self.pos += 1;
                if self.bytes.get(self.pos).is_some_and(u8::is_ascii_digit) {
                    return Err(GiveWay);
                }
            }
            Some(b'1'..=b'9') => _ = self.digits(),
            _ => return Err(GiveWay),
        }
        if self.bytes.get(self.pos) == Some(&b'.') {
            self.pos += 1;
            if self.digits() == 0 {
                return Err(GiveWay);
            }
        }
        if matches!(self.bytes.get(self.pos), Some(b'e' | b'E')) {
            self.pos += 1;
            if matches!(self.bytes.get(self.pos), Some(b'+' | b'-')) {
                self.pos += 1;
            }
            if self.digits() == 0 {
                return Err(GiveWay);
            }
        }
        Ok(())
    }

    /// Reads a non-negative number starting at `pos` as serde_json does: an integer that
    /// fits is a `u64`; one with a fraction or exponent is `significand * 10^exponent`
    /// (or `/ 10^-exponent`) in one `f64` operation, as serde_json computes it when the
    /// digits fit a `u64` and the exponent is within +-22. Anything else gives way.
    fn read_number(&mut self) -> Result<Number> {
        let start = self.pos;
        let mut significand: u64 = 0;
        let mut fraction_digits: i32 = 0;
        fn add(significand: &mut u64, digit: u8) -> Result<()> {
            *significand =
                significand.checked_mul(10).and_then(|s| s.checked_add(u64::from(digit - b'0'))).ok_or(GiveWay)?;
            Ok(())
        }
        while let Some(&d @ b'0'..=b'9') = self.bytes.get(self.pos) {
            add(&mut significand, d)?;
            self.pos += 1;
        }
        let int_digits = self.pos - start;
        if int_digits == 0 || (int_digits > 1 && self.bytes[start] == b'0') {
            return Err(GiveWay);
        }
        let mut float = false;
        if self.bytes.get(self.pos) == Some(&b'.') {
            float = true;
            self.pos += 1;
            while let Some(&d @ b'0'..=b'9') = self.bytes.get(self.pos) {
                add(&mut significand, d)?;
                fraction_digits += 1;
                self.pos += 1;
            }
            if fraction_digits == 0 {
                return Err(GiveWay);
            }
        }
        let mut exponent: i32 = 0;
        if matches!(self.bytes.get(self.pos), Some(b'e' | b'E')) {
            float = true;
            self.pos += 1;
            let negative = match self.bytes.get(self.pos) {
                Some(b'-') => {
                    self.pos += 1;
                    true
                }
                Some(b'+') => {
                    self.pos += 1;
                    false
                }
                _ => false,
            };
            let digits_start = self.pos;
            while let Some(&d @ b'0'..=b'9') = self.bytes.get(self.pos) {
                exponent = exponent.saturating_mul(10).saturating_add(i32::from(d - b'0'));
                self.pos += 1;
            }
            if self.pos == digits_start {
                return Err(GiveWay);
            }
            if negative {
                exponent = -exponent;
            }
        }
        if !float {
            return Ok(Number::U64(significand));
        }
        // Digits beyond 2^53 would round twice here, once under serde_json's
        // `float_roundtrip` parser: only exact significands take this path.
        if significand > 1 << 53 {
            return Err(GiveWay);
        }
        let exponent = exponent.saturating_sub(fraction_digits);
        let pow = *POW10.get(exponent.unsigned_abs() as usize).ok_or(GiveWay)?;
        let f = significand as f64;
        Ok(Number::F64(if exponent >= 0 { f * pow } else { f / pow }))
    }

    /// Skips one value (checked for syntax, not decoded), walking nested containers
    /// with a bit stack: bit set = object.
    fn skip_value(&mut self) -> Result<()> {
        let mut stack: u128 = 0;
        let mut depth: u32 = 0;
        loop {
            // A value is expected here.
            match self.peek_ws().ok_or(GiveWay)? {
                b'"' => {
                    self.pos += 1;
                    self.skip_str()?;
                }
                b'0'..=b'9' | b'-' => self.skip_number()?,
                b'n' => self.literal(b"null")?,
                b't' => self.literal(b"true")?,
                b'f' => self.literal(b"false")?,
                open @ (b'{' | b'[') => {
                    self.pos += 1;
                    if depth == MAX_SKIP_DEPTH {
                        return Err(GiveWay);
                    }
                    let object = open == b'{';
                    stack = stack << 1 | u128::from(object);
                    depth += 1;
                    let close = if object { b'}' } else { b']' };
                    if self.peek_ws() != Some(close) {
                        if object {
                            self.skip_key()?;
                        }
                        continue;
                    }
                    self.pos += 1;
                    stack >>= 1;
                    depth -= 1;
                }
                _ => return Err(GiveWay),
            }
            // A value ended: close containers until one goes on.
            loop {
                if depth == 0 {
                    return Ok(());
                }
                let object = stack & 1 == 1;
                match self.peek_ws() {
                    Some(b',') => {
                        self.pos += 1;
                        if object {
                            self.skip_key()?;
                        }
                        break;
                    }
                    Some(b'}') if object => {}
                    Some(b']') if !object => {}
                    _ => return Err(GiveWay),
                }
                self.pos += 1;
                stack >>= 1;
                depth -= 1;
            }
        }
    }

    /// Skips `"key":` inside a skipped object (the key is not UTF-8 checked).
    fn skip_key(&mut self) -> Result<()> {
        self.expect(b'"')?;
        self.skip_str()?;
        self.expect(b':')
    }

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
    fn noted<T>(&mut self, r: Result<T>) -> Result<T> {
        self.gave_way |= r.is_err();
        r
    }

    /// Gives way from a serde entry point.
    fn give_way<T>(&mut self) -> Result<T> {
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

/// The entries of a read object.
struct Entries<'a, 'de> {
    scanner: &'a mut Scanner<'de>,
    first: bool,
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
struct Elements<'a, 'de> {
    scanner: &'a mut Scanner<'de>,
    first: bool,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lenient::{Count, Fields, NonNull, Obj, Skip, Str, StrLen, skip, value};
    use serde_json::Value;

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

    /// A random JSON text: values of every kind, strings with escapes, odd numbers and
    /// odd whitespace, the keys the probe reads among others.
    fn random_json(rng: &mut fastrand::Rng, depth: u32, out: &mut String) {
        const KEYS: [&str; 12] =
            ["n", "s", "len", "error", "o", "x", "count", "model", "usage", "content", "é", "a\\nb"];
        const STRINGS: [&str; 10] = [
            "",
            "plain",
            "with \\\"quotes\\\"",
            "\\n\\t\\/\\b\\f\\r",
            "\\u00e9\\u4e2d",
            "\\ud83d\\ude00",
            "é中😀",
            "\\ud800",
            "long long long long long long text",
            "\\\\",
        ];
        const NUMBERS: [&str; 19] = [
            "0",
            "7",
            "-3",
            "-9223372036854775808",
            "-9223372036854775809",
            "-2.5e-3",
            "412",
            "18446744073709551615",
            "18446744073709551616",
            "1.5",
            "2.0",
            "1e2",
            "1E+2",
            "7e-1",
            "0.0133203",
            "-0",
            "1e400",
            "9007199254740993.0",
            "0.30000000000000004",
        ];
        let ws = |rng: &mut fastrand::Rng| [" ", "", "\n  ", "\t", "\r\n"][rng.usize(..5)];
        match if depth == 0 { rng.u32(..4) } else { rng.u32(..6) } {
            0 => out.push_str(["null", "true", "false"][rng.usize(..3)]),
            1 => out.push_str(NUMBERS[rng.usize(..NUMBERS.len())]),
            2 | 3 => {
                out.push('"');
                out.push_str(STRINGS[rng.usize(..STRINGS.len())]);
                out.push('"');
            }
            4 => {
                out.push('[');
                for i in 0..rng.usize(..4) {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(ws(rng));
                    random_json(rng, depth - 1, out);
                }
                out.push(']');
            }
            _ => {
                out.push('{');
                for i in 0..rng.usize(..5) {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(ws(rng));
                    out.push('"');
                    out.push_str(KEYS[rng.usize(..KEYS.len())]);
                    out.push('"');
                    out.push_str(ws(rng));
                    out.push(':');
                    random_json(rng, depth - 1, out);
                    out.push_str(ws(rng));
                }
                out.push('}');
            }
        }
    }

    #[test]
    fn random_documents_and_their_mutations_agree_with_serde_json() {
        let mut rng = fastrand::Rng::with_seed(0x5eed);
        let (mut fast_reads, mut gave_way) = (0, 0);
        for _ in 0..4000 {
            let mut text = String::from("{\"o\":");
            random_json(&mut rng, 4, &mut text);
            text.push('}');
            let bytes = text.into_bytes();
            agrees(&bytes);
            match fast::<Obj<Probe>>(&bytes) {
                Some(_) => fast_reads += 1,
                None => gave_way += 1,
            }
            // One byte changed, dropped or added, half the time at a structural byte:
            // mostly invalid, sometimes not.
            const BYTES: &[u8] = b"\"\\{}[],: 0-e.\x01\xffa";
            let structural: Vec<usize> = (0..bytes.len()).filter(|&i| b"{}[],:\"".contains(&bytes[i])).collect();
            for _ in 0..6 {
                let mut bytes = bytes.clone();
                let at = if rng.bool() { structural[rng.usize(..structural.len())] } else { rng.usize(..bytes.len()) };
                let byte = BYTES[rng.usize(..BYTES.len())];
                match rng.u32(..3) {
                    0 => bytes[at] = byte,
                    1 => _ = bytes.remove(at),
                    _ => bytes.insert(at, byte),
                }
                agrees(&bytes);
                agrees(&bytes[..at]);
            }
        }
        // Both paths are exercised.
        assert!(fast_reads > 1000 && gave_way > 100, "fast {fast_reads}, gave way {gave_way}");
    }
}
