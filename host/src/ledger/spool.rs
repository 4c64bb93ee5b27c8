//! The local append-only spool: every batch is written here (one fsync per batch) before it
//! goes to Postgres, and replayed from here when Postgres was down or the process died. A
//! torn tail (a crash mid-write) is truncated on open. Records: `ledger::frames`.
//!
//! Segments: rows are appended to `ledger.spool`; once it is `segment_bytes` big it is sealed
//! (renamed `ledger.spool.<n>`) and a new one started. A sealed segment is deleted as soon as
//! every row first spooled in it is in Postgres (`ledger::backlog` counts them), so the spool
//! stays small under a sustained load that never leaves it empty.
//!
//! One process per spool directory: `ledger.lock` beside the spool is locked (`flock`,
//! exclusive, released when the process dies, however it dies) for the spool's lifetime,
//! so a second gateway pointed at the same directory fails to start instead of replaying
//! and truncating the first one's rows.

use super::frames::{decode, decode_at, encode};
use super::lock::lock_dir;
use super::row::TransactionRow;
pub use super::spool_error::SpoolError;
use super::spool_error::io;
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

pub use super::frames::MAX_FRAME;

const ACTIVE: &str = "ledger.spool";

/// Rows, each with where its frame starts.
pub type Framed = Vec<(u64, TransactionRow)>;

/// The rows a segment held when the spool was opened.
#[derive(Debug)]
pub struct Leftover {
    pub segment: u64,
    pub rows: Framed,
}

/// The spool: sealed segments and the active one.
pub struct Spool {
    dir: PathBuf,
    file: File,
    /// The active segment's number (it becomes the sealed file's suffix).
    active: u64,
    active_len: u64,
    /// Sealed segments: number -> bytes.
    sealed: BTreeMap<u64, u64>,
    /// Holds the directory's lock until the spool is dropped.
    _lock: File,
}

impl std::fmt::Debug for Spool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Spool").field("dir", &self.dir).field("len", &self.len()).finish()
    }
}

/// Reads a segment's valid frames, truncating a torn or corrupt tail.
fn open_segment(path: &Path) -> Result<(File, Framed, u64), SpoolError> {
    let mut file = OpenOptions::new().read(true).append(true).create(true).open(path).map_err(io(path))?;
    let mut bytes = Vec::new();
    file.seek(SeekFrom::Start(0)).map_err(io(path))?;
    file.read_to_end(&mut bytes).map_err(io(path))?;
    let (rows, good) = decode(&bytes);
    if good < bytes.len() {
        tracing::warn!(path = %path.display(), kept = good, dropped = bytes.len() - good, "truncating torn spool tail");
        file.set_len(good as u64).map_err(io(path))?;
        file.sync_all().map_err(io(path))?;
    }
    Ok((file, rows, good as u64))
}

impl Spool {
    /// Opens (creating) the spool in `dir`: every segment's rows, oldest first.
    pub fn open(dir: &Path) -> Result<(Spool, Vec<Leftover>), SpoolError> {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let lock = lock_dir(dir)?;
        let mut numbers: Vec<u64> = std::fs::read_dir(dir)
            .map_err(io(dir))?
            .filter_map(|e| e.ok()?.file_name().to_str()?.strip_prefix("ledger.spool.")?.parse().ok())
            .collect();
        numbers.sort_unstable();
        let (mut leftover, mut sealed) = (Vec::new(), BTreeMap::new());
        for n in numbers {
            let (_, rows, len) = open_segment(&dir.join(format!("{ACTIVE}.{n}")))?;
            sealed.insert(n, len);
            leftover.push(Leftover { segment: n, rows });
        }
        let active = sealed.last_key_value().map_or(0, |(n, _)| n + 1);
        let (file, rows, active_len) = open_segment(&dir.join(ACTIVE))?;
        leftover.push(Leftover { segment: active, rows });
        leftover.retain(|l| !l.rows.is_empty());
        let spool = Spool { dir: dir.to_path_buf(), file, active, active_len, sealed, _lock: lock };
        Ok((spool, leftover))
    }

    /// Bytes in every segment.
    pub fn len(&self) -> u64 {
        self.active_len + self.sealed.values().sum::<u64>()
    }

    /// True when nothing is spooled.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes in the active segment.
    pub fn active_len(&self) -> u64 {
        self.active_len
    }

    /// The segment appends go to.
    pub fn active_segment(&self) -> u64 {
        self.active
    }

    /// Appends a batch and makes it durable (one fsync).
    pub fn append(&mut self, rows: &[TransactionRow]) -> Result<(), SpoolError> {
        self.append_encoded(&encode(rows)?.0)
    }

    /// Appends frames made by `frames::encode` and makes them durable (one fsync).
    pub fn append_encoded(&mut self, frames: &[u8]) -> Result<(), SpoolError> {
        let path = self.dir.join(ACTIVE);
        self.file.write_all(frames).map_err(io(&path))?;
        self.file.sync_data().map_err(io(&path))?;
        self.active_len += frames.len() as u64;
        Ok(())
    }

    /// Seals the active segment (it keeps its rows until [`remove`](Self::remove)) and starts
    /// a new one; returns the sealed segment's number.
    pub fn seal(&mut self) -> Result<u64, SpoolError> {
        let (path, sealed) = (self.dir.join(ACTIVE), self.active);
        std::fs::rename(&path, self.dir.join(format!("{ACTIVE}.{sealed}"))).map_err(io(&path))?;
        self.file = OpenOptions::new().read(true).append(true).create(true).open(&path).map_err(io(&path))?;
        File::open(&self.dir).and_then(|d| d.sync_all()).map_err(io(&self.dir))?;
        self.sealed.insert(sealed, self.active_len);
        (self.active, self.active_len) = (sealed + 1, 0);
        Ok(sealed)
    }

    /// Deletes a sealed segment (every row in it is in Postgres).
    pub fn remove(&mut self, segment: u64) -> Result<(), SpoolError> {
        let path = self.dir.join(format!("{ACTIVE}.{segment}"));
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io(&path)(e)),
            _ => {}
        }
        self.sealed.remove(&segment);
        Ok(())
    }

    /// Read handles of the given segments (existing ones), oldest first: they keep reading
    /// the same file when it is sealed (renamed) meanwhile.
    pub fn readers(&self, segments: &[u64]) -> Result<Vec<File>, SpoolError> {
        let mut out = Vec::new();
        for &n in segments {
            let path = if n == self.active { self.dir.join(ACTIVE) } else { self.dir.join(format!("{ACTIVE}.{n}")) };
            if n == self.active || self.sealed.contains_key(&n) {
                out.push(File::open(&path).map_err(io(&path))?);
            }
        }
        Ok(out)
    }

    /// Every row in the spool, oldest first.
    pub fn read_all(&mut self) -> Result<Vec<TransactionRow>, SpoolError> {
        let segments: Vec<u64> = self.sealed.keys().copied().chain([self.active]).collect();
        let mut rows = Vec::new();
        for mut file in self.readers(&segments)? {
            rows.extend(decode(&read_file(&mut file, &self.dir)?).0.into_iter().map(|(_, row)| row));
        }
        Ok(rows)
    }

    /// Empties the active segment (everything in it is in Postgres).
    pub fn clear(&mut self) -> Result<(), SpoolError> {
        let path = self.dir.join(ACTIVE);
        self.file.set_len(0).map_err(io(&path))?;
        self.file.sync_all().map_err(io(&path))?;
        self.active_len = 0;
        Ok(())
    }
}

fn read_file(file: &mut File, dir: &Path) -> Result<Vec<u8>, SpoolError> {
    let mut bytes = Vec::new();
    file.seek(SeekFrom::Start(0)).map_err(io(dir))?;
    file.read_to_end(&mut bytes).map_err(io(dir))?;
    Ok(bytes)
}

/// The rows of an open segment's frames that start at `starts` (`dir` names it in errors):
/// the segment is read whole (at most its 32 MiB), only those frames are decoded.
pub fn read_frames_at(file: &mut File, dir: &Path, starts: &[u64]) -> Result<Vec<TransactionRow>, SpoolError> {
    Ok(decode_at(&read_file(file, dir)?, starts))
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
        let flat = |l: Vec<Leftover>| l.into_iter().flat_map(|l| l.rows).map(|(_, r)| r).collect::<Vec<_>>();
        s.append(&[row(1), row(2)]).unwrap();
        s.append(&[row(3)]).unwrap();
        let full = std::fs::read(dir.path().join("ledger.spool")).unwrap();
        let first_batch = s.read_all().unwrap();
        assert_eq!(first_batch.len(), 3);
        drop(s);
        for cut in 0..full.len() {
            std::fs::write(dir.path().join("ledger.spool"), &full[..cut]).unwrap();
            let (s, rows) = Spool::open(dir.path()).unwrap();
            let rows = flat(rows);
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
        assert_eq!(flat(rows).len(), 2);
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

    #[test]
    fn sealed_segments_are_read_on_open_until_removed() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, _) = Spool::open(dir.path()).unwrap();
        s.append(&[row(1), row(2)]).unwrap();
        let first = s.seal().unwrap();
        s.append(&[row(3)]).unwrap();
        let second = s.seal().unwrap();
        s.append(&[row(4)]).unwrap();
        assert_eq!((first, second, s.active_segment()), (0, 1, 2));
        assert_eq!(s.read_all().unwrap(), [row(1), row(2), row(3), row(4)]);
        s.remove(first).unwrap();
        let len = s.len();
        drop(s);
        let (s, left) = Spool::open(dir.path()).unwrap();
        let got: Vec<_> = left.iter().map(|l| (l.segment, l.rows.clone())).collect();
        assert_eq!(got, [(1, vec![(0, row(3))]), (2, vec![(0, row(4))])]);
        let mut file = s.readers(&[1]).unwrap().remove(0);
        assert_eq!(
            read_frames_at(&mut file, dir.path(), &[0, 3]).unwrap(),
            [row(3)],
            "an offset off a frame reads nothing"
        );
        assert_eq!((s.len(), s.active_segment()), (len, 2));
    }
}
