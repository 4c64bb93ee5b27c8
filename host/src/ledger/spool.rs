//! The local append-only spool: every batch is written here (checksummed frames, one
//! fsync per batch) before it goes to Postgres, and replayed from here when Postgres was
//! down or the process died. A torn tail (a crash mid-write) is truncated on open.
//!
//! Frame: `len: u32 LE | crc32(payload): u32 LE | payload (JSON row)`.
//!
//! One process per spool directory: `ledger.lock` beside the spool is locked (`flock`,
//! exclusive, released when the process dies, however it dies) for the spool's lifetime,
//! so a second gateway pointed at the same directory fails to start instead of replaying
//! and truncating the first one's rows.

use super::row::TransactionRow;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

const HEADER: usize = 8;
/// Frames larger than this are corrupt by definition (a row is bounded well below it before
/// it is spooled: `ledger::bounds::MAX_ROW_BYTES`).
pub const MAX_FRAME: u32 = 16 << 20;

/// Spool errors (disk full, permissions): the writer keeps retrying and reports them.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("spool {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("spool record is not a transaction: {0}")]
    Decode(String),
    #[error("spool record of {0} bytes is larger than a frame")]
    TooLarge(usize),
    #[error(
        "spool directory {dir} is in use by another process ({holder}); each gateway needs a \
         spool directory of its own (billing.spool_dir / server.state_dir)"
    )]
    Locked { dir: PathBuf, holder: String },
}

/// The spool file.
pub struct Spool {
    path: PathBuf,
    file: File,
    len: u64,
    /// Holds the directory's lock until the spool is dropped.
    _lock: File,
}

impl std::fmt::Debug for Spool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Spool").field("path", &self.path).field("len", &self.len).finish()
    }
}

fn crc(bytes: &[u8]) -> u32 {
    crc32fast::hash(bytes)
}

impl Spool {
    /// Opens (creating) `dir/ledger.spool`, truncating a torn or corrupt tail.
    pub fn open(dir: &Path) -> Result<(Spool, Vec<TransactionRow>), SpoolError> {
        let path = dir.join("ledger.spool");
        let io = |source| SpoolError::Io { path: path.clone(), source };
        std::fs::create_dir_all(dir).map_err(io)?;
        let lock = lock_dir(dir)?;
        let mut file = OpenOptions::new().read(true).append(true).create(true).open(&path).map_err(io)?;
        let mut bytes = Vec::new();
        file.seek(SeekFrom::Start(0)).map_err(io)?;
        file.read_to_end(&mut bytes).map_err(io)?;
        let (rows, good) = decode_frames(&bytes);
        if good < bytes.len() {
            tracing::warn!(path = %path.display(), kept = good, dropped = bytes.len() - good, "truncating torn spool tail");
            file.set_len(good as u64).map_err(io)?;
            file.sync_all().map_err(io)?;
        }
        let spool = Spool { path, file, len: good as u64, _lock: lock };
        Ok((spool, rows))
    }

    /// Bytes in the spool.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True when nothing is spooled.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends a batch and makes it durable (one fsync).
    pub fn append(&mut self, rows: &[TransactionRow]) -> Result<(), SpoolError> {
        let mut buf = Vec::with_capacity(rows.len() * 512);
        for row in rows {
            let payload = serde_json::to_vec(row).map_err(|e| SpoolError::Decode(e.to_string()))?;
            // Never written: on open it would read as a torn tail and take every later frame.
            if payload.len() > MAX_FRAME as usize {
                return Err(SpoolError::TooLarge(payload.len()));
            }
            buf.extend_from_slice(&(payload.len() as u32).to_le_bytes());
            buf.extend_from_slice(&crc(&payload).to_le_bytes());
            buf.extend_from_slice(&payload);
        }
        let io = |source| SpoolError::Io { path: self.path.clone(), source };
        self.file.write_all(&buf).map_err(io)?;
        self.file.sync_data().map_err(io)?;
        self.len += buf.len() as u64;
        Ok(())
    }

    /// Every row in the spool.
    pub fn read_all(&mut self) -> Result<Vec<TransactionRow>, SpoolError> {
        let io = |source| SpoolError::Io { path: self.path.clone(), source };
        let mut bytes = Vec::with_capacity(self.len as usize);
        self.file.seek(SeekFrom::Start(0)).map_err(io)?;
        self.file.read_to_end(&mut bytes).map_err(io)?;
        Ok(decode_frames(&bytes).0)
    }

    /// Empties the spool (everything in it is in Postgres).
    pub fn clear(&mut self) -> Result<(), SpoolError> {
        let io = |source| SpoolError::Io { path: self.path.clone(), source };
        self.file.set_len(0).map_err(io)?;
        self.file.sync_all().map_err(io)?;
        self.len = 0;
        Ok(())
    }
}

/// Takes `dir/ledger.lock` (exclusive, not waiting) and writes this process's id into it.
fn lock_dir(dir: &Path) -> Result<File, SpoolError> {
    let path = dir.join("ledger.lock");
    let io = |source| SpoolError::Io { path: path.clone(), source };
    let mut file = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&path).map_err(io)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = match holder.trim() {
                "" => "pid unknown".to_string(),
                pid => format!("pid {pid}"),
            };
            return Err(SpoolError::Locked { dir: dir.to_path_buf(), holder });
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
    }
    file.set_len(0).map_err(io)?;
    file.write_all(format!("{}\n", std::process::id()).as_bytes()).map_err(io)?;
    Ok(file)
}

/// Decodes whole valid frames; returns the rows and the length of the valid prefix.
fn decode_frames(bytes: &[u8]) -> (Vec<TransactionRow>, usize) {
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

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A row costing `n` nano-USD (also used by `ops::access`'s tests).
    pub(crate) fn row(n: i64) -> TransactionRow {
        TransactionRow {
            request_id: format!("r{n}"),
            client_request_id: None,
            tenant_id: uuid::Uuid::nil(),
            api_key_id: uuid::Uuid::nil(),
            provider: Some("p".into()),
            model_requested: "m".into(),
            model_served: None,
            upstream_model: None,
            api_format: "openai-chat".into(),
            stream: false,
            status: "ok".into(),
            error_class: None,
            error_message: None,
            http_status: Some(200),
            input_uncached_tokens: n,
            cache_read_tokens: 0,
            cache_write_5m_tokens: 0,
            cache_write_1h_tokens: 0,
            output_tokens: 0,
            reasoning_tokens: 0,
            fees: serde_json::json!({}),
            cost_nano: n,
            provider_cost_nano: None,
            price_version: None,
            price_snapshot: None,
            estimated: false,
            needs_review: false,
            latency_ms: None,
            created_at_us: 0,
        }
    }

    #[test]
    fn torn_tails_are_truncated_at_every_byte() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, rows) = Spool::open(dir.path()).unwrap();
        assert!(rows.is_empty());
        s.append(&[row(1), row(2)]).unwrap();
        s.append(&[row(3)]).unwrap();
        let full = std::fs::read(dir.path().join("ledger.spool")).unwrap();
        let first_batch = s.read_all().unwrap();
        assert_eq!(first_batch.len(), 3);
        drop(s);
        for cut in 0..full.len() {
            std::fs::write(dir.path().join("ledger.spool"), &full[..cut]).unwrap();
            let (s, rows) = Spool::open(dir.path()).unwrap();
            let whole: Vec<_> = first_batch.iter().take(rows.len()).cloned().collect();
            assert_eq!(rows, whole, "cut at {cut}");
            assert!(s.len() as usize <= cut);
            assert_eq!(std::fs::metadata(dir.path().join("ledger.spool")).unwrap().len(), s.len());
        }
        // A flipped byte inside the last frame drops only that frame.
        let mut bad = full.clone();
        let last = bad.len() - 2;
        bad[last] ^= 0xff;
        std::fs::write(dir.path().join("ledger.spool"), &bad).unwrap();
        let (_, rows) = Spool::open(dir.path()).unwrap();
        assert_eq!(rows.len(), 2);
    }

    #[test]
    fn a_directory_has_one_spool_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let (first, _) = Spool::open(dir.path()).unwrap();
        let e = Spool::open(dir.path()).unwrap_err();
        let text = e.to_string();
        assert!(matches!(e, SpoolError::Locked { .. }), "{text}");
        assert!(text.contains("in use by another process") && text.contains(&std::process::id().to_string()), "{text}");
        drop(first);
        let (_again, _) = Spool::open(dir.path()).unwrap();
    }

    #[test]
    fn clear_empties() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, _) = Spool::open(dir.path()).unwrap();
        s.append(&[row(1)]).unwrap();
        s.clear().unwrap();
        assert!(s.is_empty());
        assert!(s.read_all().unwrap().is_empty());
        drop(s);
        let (_, rows) = Spool::open(dir.path()).unwrap();
        assert!(rows.is_empty());
    }
}
