//! Skipped values: checked for syntax, not decoded, nesting kept in a bit stack.

use crate::{GiveWay, Result, Scanner};

/// Nesting inside one skipped value the fast path follows (one bit each in a `u128`).
pub(crate) const MAX_SKIP_DEPTH: u32 = 128;

impl Scanner<'_> {
    /// Skips one value (checked for syntax, not decoded), walking nested containers
    /// with a bit stack: bit set = object.
    pub(crate) fn skip_value(&mut self) -> Result<()> {
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
}
