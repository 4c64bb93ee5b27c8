//! Numbers: skipped (serde_json's grammar checked) or read as serde_json reads them.

use crate::{GiveWay, Result, Scanner};

/// A number as serde_json's `deserialize_any` hands it to a visitor.
pub(crate) enum Number {
    U64(u64),
    F64(f64),
}

/// `10^0 ..= 10^22`: the powers of ten an `f64` holds exactly.
const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20,
    1e21, 1e22,
];

impl Scanner<'_> {
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
    pub(crate) fn skip_number(&mut self) -> Result<()> {
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
    pub(crate) fn read_number(&mut self) -> Result<Number> {
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
}
