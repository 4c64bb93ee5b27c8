//! One process per spool directory: `ledger.lock` is locked (`flock`, exclusive, released
//! when the process dies, however it dies) for the spool's lifetime and names its holder.

use super::spool_error::{SpoolError, io};
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::Path;

/// Takes `dir/ledger.lock` (exclusive, not waiting) and writes this process's id into it.
pub(super) fn lock_dir(dir: &Path) -> Result<File, SpoolError> {
    let path = dir.join("ledger.lock");
    let mut file =
        OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&path).map_err(io(&path))?;
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
        Err(std::fs::TryLockError::Error(e)) => return Err(io(&path)(e)),
    }
    file.set_len(0).map_err(io(&path))?;
    file.write_all(format!("{}\n", std::process::id()).as_bytes()).map_err(io(&path))?;
    Ok(file)
}
