//! The spool's record format: checksummed frames, `len: u32 LE | crc32(payload): u32 LE |
//! payload (JSON row)`. A torn or corrupt frame ends what is read of a file.

use super::row::TransactionRow;
use super::spool_error::SpoolError;

const HEADER: usize = 8;
/// Frames larger than this are corrupt by definition (a row is bounded well below it before
/// it is spooled: `ledger::bounds::MAX_ROW_BYTES`).
pub const MAX_FRAME: u32 = 16 << 20;

fn crc(bytes: &[u8]) -> u32 {
    crc32fast::hash(bytes)
}

/// The frames of `rows`, ready to append, and where each starts. A row that would not fit
/// a frame is refused: written, it would read as a torn tail on open and take every later
/// frame with it.
pub fn encode(rows: &[TransactionRow]) -> Result<(Vec<u8>, Vec<u64>), SpoolError> {
    let mut buf = Vec::with_capacity(rows.len() * 640);
    let mut starts = Vec::with_capacity(rows.len());
    for row in rows {
        let start = buf.len();
        starts.push(start as u64);
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
    Ok((buf, starts))
}

/// The frame at `at`: its row and where the next frame starts (`None` when torn or corrupt).
fn frame(bytes: &[u8], at: usize) -> Option<(TransactionRow, usize)> {
    let header = bytes.get(at..at.checked_add(HEADER)?)?;
    let len = u32::from_le_bytes(header[..4].try_into().expect("4 bytes"));
    let sum = u32::from_le_bytes(header[4..].try_into().expect("4 bytes"));
    if len > MAX_FRAME {
        return None;
    }
    let end = at + HEADER + len as usize;
    let payload = bytes.get(at + HEADER..end)?;
    if crc(payload) != sum {
        return None;
    }
    Some((serde_json::from_slice(payload).ok()?, end))
}

/// Decodes whole valid frames; returns the rows with where each starts, and the length of
/// the valid prefix.
pub fn decode(bytes: &[u8]) -> (Vec<(u64, TransactionRow)>, usize) {
    let mut rows = Vec::new();
    let mut at = 0;
    while let Some((row, end)) = frame(bytes, at) {
        rows.push((at as u64, row));
        at = end;
    }
    (rows, at)
}

/// Decodes only the frames starting at `starts` (valid ones).
pub fn decode_at(bytes: &[u8], starts: &[u64]) -> Vec<TransactionRow> {
    starts.iter().filter_map(|&at| Some(frame(bytes, usize::try_from(at).ok()?)?.0)).collect()
}
