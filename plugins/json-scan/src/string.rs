//! Strings: skipped (syntax only) or read (unescaped into scratch space, UTF-8 checked).

use crate::bytes::find_special;
use crate::{GiveWay, Result, Scanner};

/// A string read from the body: borrowed when it had no escapes.
pub(crate) enum Text<'de, 's> {
    Borrowed(&'de str),
    Copied(&'s str),
}

/// The value of one hex digit.
fn hex(b: u8) -> Option<u16> {
    (b as char).to_digit(16).map(|d| d as u16)
}

impl<'de> Scanner<'de> {
    /// Skips a string whose opening quote was consumed: any bytes but control
    /// characters, escapes checked for syntax (`\u` with any four hex digits).
    pub(crate) fn skip_str(&mut self) -> Result<()> {
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
    pub(crate) fn read_str<'s>(&'s mut self) -> Result<Text<'de, 's>> {
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
}
