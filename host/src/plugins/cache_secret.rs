//! The plugin cache's per-install secret (`cache.key`, 32 random bytes): created once,
//! atomically, mode 0600; used only while it is private to this process's user and the
//! cache directory cannot be written by group or others — else whoever could write either
//! could make this process load native code of theirs.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The per-install secret, in the cache directory.
pub const SECRET_FILE: &str = "cache.key";

/// Why the cache's secret cannot be used (the cache is then off: every plugin compiles).
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path} may be written by group or others (mode {mode:o}): whoever can write it can plant native code")]
    OpenDirectory { path: PathBuf, mode: u32 },
    #[error("{0} must be a regular file readable by its owner only (mode 0600)")]
    NotPrivate(PathBuf),
    #[error("{path} is owned by uid {owner}, not by this process's effective uid {euid}")]
    ForeignOwner { path: PathBuf, owner: u32, euid: u32 },
    #[error("{0} is not 32 bytes")]
    WrongLength(PathBuf),
}

impl SecretError {
    /// The `reason` label of `xjp_plugin_cache_disabled_total`.
    pub fn reason(&self) -> &'static str {
        match self {
            SecretError::Io { .. } => "io",
            SecretError::OpenDirectory { .. } => "directory_mode",
            SecretError::NotPrivate(_) => "secret_mode",
            SecretError::ForeignOwner { .. } => "secret_owner",
            SecretError::WrongLength(_) => "secret_length",
        }
    }
}

/// The install's secret: read, or created atomically (a complete file appears at once, so
/// concurrent processes agree on one). Refused when others may read or write it, when
/// another user owns it, or when group or others may write the directory (they could swap
/// the secret or the entries).
pub(super) fn read_or_create_secret(dir: &Path) -> Result<[u8; 32], SecretError> {
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(io(dir))?;
    let mode = std::fs::metadata(dir).map_err(io(dir))?.permissions().mode();
    if mode & 0o022 != 0 {
        return Err(SecretError::OpenDirectory { path: dir.to_path_buf(), mode: mode & 0o7777 });
    }
    let path = dir.join(SECRET_FILE);
    if std::fs::symlink_metadata(&path).is_err() {
        let key: [u8; 32] = rand::random();
        let tmp = dir.join(format!(".{SECRET_FILE}.tmp-{}-{:016x}", std::process::id(), rand::random::<u64>()));
        let mut f =
            std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp).map_err(io(&tmp))?;
        f.write_all(&key).and_then(|()| f.sync_all()).map_err(io(&tmp))?;
        // A hard link fails if another process created the secret first: theirs is used.
        let linked = std::fs::hard_link(&tmp, &path);
        let _ = std::fs::remove_file(&tmp);
        if let Err(e) = linked
            && e.kind() != std::io::ErrorKind::AlreadyExists
        {
            return Err(io(&path)(e));
        }
    }
    let meta = std::fs::symlink_metadata(&path).map_err(io(&path))?;
    private_secret(&path, &meta, effective_uid())?;
    let bytes = std::fs::read(&path).map_err(io(&path))?;
    bytes.try_into().map_err(|_| SecretError::WrongLength(path))
}

/// The secret file must be a regular file of mode 0600 (or stricter) owned by `euid`.
fn private_secret(path: &Path, meta: &std::fs::Metadata, euid: u32) -> Result<(), SecretError> {
    if !meta.file_type().is_file() || meta.permissions().mode() & 0o077 != 0 {
        return Err(SecretError::NotPrivate(path.to_path_buf()));
    }
    if meta.uid() != euid {
        return Err(SecretError::ForeignOwner { path: path.to_path_buf(), owner: meta.uid(), euid });
    }
    Ok(())
}

/// This process's effective user id.
fn effective_uid() -> u32 {
    // SAFETY: geteuid has no preconditions, cannot fail and touches no memory of ours.
    unsafe { libc::geteuid() }
}

/// An I/O error on `path`.
fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SecretError + use<> {
    let path = path.to_path_buf();
    move |source| SecretError::Io { path, source }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_secret_is_created_once_and_private() {
        let dir = tempfile::tempdir().unwrap();
        let a = read_or_create_secret(dir.path()).unwrap();
        assert_eq!(read_or_create_secret(dir.path()).unwrap(), a);
        let path = dir.path().join(SECRET_FILE);
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = read_or_create_secret(dir.path()).unwrap_err();
        assert!(matches!(e, SecretError::NotPrivate(_)), "a secret others can read is refused: {e}");
    }

    #[test]
    fn a_secret_owned_by_another_user_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        read_or_create_secret(dir.path()).unwrap();
        let path = dir.path().join(SECRET_FILE);
        let meta = std::fs::symlink_metadata(&path).unwrap();
        assert_eq!(meta.uid(), effective_uid(), "created by this process");
        assert!(private_secret(&path, &meta, meta.uid()).is_ok());
        let e = private_secret(&path, &meta, meta.uid() + 1).unwrap_err();
        assert!(matches!(e, SecretError::ForeignOwner { .. }), "{e}");
        assert_eq!(e.reason(), "secret_owner");
        // As root, a real foreign file: chown it to `nobody`.
        if effective_uid() == 0 {
            std::os::unix::fs::chown(&path, Some(65_534), None).unwrap();
            let e = read_or_create_secret(dir.path()).unwrap_err();
            assert!(matches!(e, SecretError::ForeignOwner { owner: 65_534, euid: 0, .. }), "{e}");
        }
    }

    #[test]
    fn a_directory_group_or_others_may_write_is_refused() {
        for mode in [0o770, 0o702, 0o777] {
            let dir = tempfile::tempdir().unwrap();
            read_or_create_secret(dir.path()).unwrap();
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(mode)).unwrap();
            let e = read_or_create_secret(dir.path()).unwrap_err();
            assert!(matches!(e, SecretError::OpenDirectory { mode: m, .. } if m == mode), "{mode:o}: {e}");
            assert_eq!(e.reason(), "directory_mode");
        }
        // Readable by others is fine (nothing in it is secret but the key file, mode 0600).
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        assert!(read_or_create_secret(dir.path()).is_ok());
    }
}
