//! The spool's record format: checksummed frames, `len: u32 LE | crc32(payload): u32 LE |
//! payload (JSON row)`. A torn or corrupt frame ends what is read of a file.

use super::row::TransactionRow;
use super::spool::SpoolError;

const HEADER: usize = 8;
/// Frames larger than this are corrupt by definition (a row is bounded well below it before
/// it is spooled: `ledger::bounds::MAX_ROW_BYTES`).
pub const MAX_FRAME: u32 = 16 << 20;

fn crc(bytes: &[u8]) -> u32 {
    crc32fast::hash(bytes)
}

/// The frames of `rows`, ready to append. A row that would not fit a frame is refused:
/// written, it would read as a torn tail on open and take every later frame with it.
pub fn encode(rows: &[TransactionRow]) -> Result<Vec<u8>, SpoolError> {
    let mut buf = Vec::with_capacity(rows.len() * 640);
    for row in rows {
        let start = buf.len();
        buf.extend_from_slice(&[0; HEADER]);
        serde_json::to_writer(&mut buf, row).map_err(|e| SpoolError::Decode(e.to_string()))?;
        let len = buf.len() - start - HEADER;
        if len > MAX_FRAME as usize {
            return Err(SpoolError::TooLarge(len));
        }
        let sum = crc(&buf[start + HEADER..]);
        buf[start..start + 4].copy_from_slice(&(len as u32).to_le_bytes());
        buf[start + 4..start + HEADER].copy_from_slice(&sum.to_le_bytes());
    }
    Ok(buf)
}

/// Decodes whole valid frames; returns the rows and the length of the valid prefix.
pub fn decode(bytes: &[u8]) -> (Vec<TransactionRow>, usize) {
    let mut rows = Vec::new();
    let mut at = 0;
    while bytes.len() - at >= HEADER {
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"));
        let sum = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().expect("4 bytes"));
        let end = at + HEADER + len as usize;
        if len > MAX_FRAME || end > bytes.len() {
            break;
        }
        let payload = &bytes[at + HEADER..end];
        if crc(payload) != sum {
            break;
        }
        match serde_json::from_slice(payload) {
            Ok(row) => rows.push(row),
            Err(_) => break,
        }
        at = end;
    }
    (rows, at)
}
