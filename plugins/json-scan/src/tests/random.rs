//! Random documents and one-byte mutations of them, checked against serde_json.

use super::{Obj, Probe, agrees, fast};

/// A random JSON text: values of every kind, strings with escapes, odd numbers and
/// odd whitespace, the keys the probe reads among others.
fn random_json(rng: &mut fastrand::Rng, depth: u32, out: &mut String) {
    const KEYS: [&str; 12] = ["n", "s", "len", "error", "o", "x", "count", "model", "usage", "content", "é", "a\\nb"];
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
