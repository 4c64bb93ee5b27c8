//! Byte runs: where a string's plain run ends and where a whitespace run ends, eight bytes
//! per step natively (SWAR) and sixteen with wasm SIMD (`+simd128`).

/// Whether `b` ends the plain run of a JSON string: `"`, `\` or a control character.
fn is_special(b: u8) -> bool {
    b == b'"' || b == b'\\' || b < 0x20
}

/// The index of the first byte at or after `i` that [`is_special`], or `bytes.len()`;
/// also whether every byte before it was ASCII. Eight bytes per step, with the
/// zero-byte trick (the lowest flagged byte is always a true match).
#[cfg_attr(all(target_arch = "wasm32", target_feature = "simd128"), inline(never))]
pub(crate) fn find_special_words(bytes: &[u8], mut i: usize) -> (usize, bool) {
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
pub(crate) use find_special_words as find_special;

/// [`find_special_words`] sixteen bytes per step with wasm SIMD (plugins are built with
/// `+simd128`, see `.cargo/config.toml`): a string's plain run costs about a sixth.
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
#[inline(always)]
pub(crate) fn find_special(bytes: &[u8], mut i: usize) -> (usize, bool) {
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
pub(crate) fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\n' | b'\r' | b'\t')
}

/// The index of the first byte at or after `i` that is not whitespace, or `bytes.len()`.
#[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
pub(crate) fn skip_ws_run(bytes: &[u8], mut i: usize) -> usize {
    while bytes.get(i).is_some_and(|&b| is_ws(b)) {
        i += 1;
    }
    i
}

/// [`skip_ws_run`] sixteen bytes per step.
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
pub(crate) fn skip_ws_run(bytes: &[u8], mut i: usize) -> usize {
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
