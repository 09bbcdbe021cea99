//! Errors: why a mount could not start (typed), and how an engine error
//! becomes the errno a program sees through the filesystem.

use dbos_engine::Error as EngineError;
use std::path::PathBuf;

/// Why `dbos mount` could not mount (or unmount) the filesystem.
#[derive(Debug, thiserror::Error)]
pub enum MountError {
    /// The mount point is unusable: missing, not a directory, not empty.
    #[error("mount point {path}: {reason}")]
    MountPoint {
        /// The mount point as given.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The FUSE device is missing or cannot be opened.
    #[error("/dev/fuse: {0} (load the fuse module, or run where FUSE is available)")]
    NoFuseDevice(String),
    /// The fusermount3 helper (Debian/Ubuntu package `fuse3`) is missing.
    #[error("fusermount3 not found in PATH: install the fuse3 package (apt-get install fuse3)")]
    NoFusermount,
    /// The engine refused: no such branch, bad REF, database unreadable.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The kernel or fusermount3 refused the mount.
    #[error("mounting {path}: {source}")]
    Mount {
        /// The mount point.
        path: PathBuf,
        /// What the mount call said.
        source: std::io::Error,
    },
    /// The engine thread could not be started or stopped answering.
    #[error("engine thread: {0}")]
    Worker(String),
}

/// The errno for an engine error, as a POSIX filesystem would give it.
/// Errors that have no POSIX meaning (a broken database, a failed commit
/// after retrying) are EIO; callers log those.
pub fn errno_of(e: &EngineError) -> i32 {
    match e {
        EngineError::NotFound(_) | EngineError::NoSuchBranch(_) => libc::ENOENT,
        EngineError::AlreadyExists(_) => libc::EEXIST,
        EngineError::NotADirectory(_) => libc::ENOTDIR,
        EngineError::IsADirectory(_) => libc::EISDIR,
        EngineError::DirectoryNotEmpty(_) => libc::ENOTEMPTY,
        EngineError::MoveIntoSelf { .. } => libc::EINVAL,
        EngineError::SymlinkLoop(_) => libc::ELOOP,
        EngineError::RootImmutable => libc::EBUSY,
        EngineError::ReadOnly(_) => libc::EROFS,
        EngineError::InvalidPath { reason, .. } => {
            if reason.contains("longer than") {
                libc::ENAMETOOLONG
            } else {
                libc::EINVAL
            }
        }
        EngineError::Conflict { .. } | EngineError::Busy { .. } => libc::EAGAIN,
        EngineError::NoSpace { .. } => libc::ENOSPC,
        EngineError::ReadOnlyDatabase { .. } => libc::EROFS,
        EngineError::Io { source, .. } | EngineError::Stream(source) => {
            source.raw_os_error().unwrap_or(libc::EIO)
        }
        _ => libc::EIO,
    }
}

/// True when an engine error means something is wrong with the mount or
/// the database rather than with what the program asked: worth a log line.
pub fn is_serious(e: &EngineError) -> bool {
    errno_of(e) == libc::EIO || e.is_retryable()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_errors_map_to_posix_errnos() {
        let s = || "/x".to_string();
        assert_eq!(errno_of(&EngineError::NotFound(s())), libc::ENOENT);
        assert_eq!(errno_of(&EngineError::AlreadyExists(s())), libc::EEXIST);
        assert_eq!(errno_of(&EngineError::NotADirectory(s())), libc::ENOTDIR);
        assert_eq!(errno_of(&EngineError::IsADirectory(s())), libc::EISDIR);
        assert_eq!(
            errno_of(&EngineError::DirectoryNotEmpty(s())),
            libc::ENOTEMPTY
        );
        assert_eq!(errno_of(&EngineError::ReadOnly(s())), libc::EROFS);
        assert_eq!(
            errno_of(&EngineError::Busy {
                location: String::new(),
                waited_s: 0.0
            }),
            libc::EAGAIN
        );
        assert_eq!(errno_of(&EngineError::Database(s())), libc::EIO);
        assert_eq!(
            errno_of(&EngineError::InvalidPath {
                path: s(),
                reason: "a name is longer than 255 bytes".into()
            }),
            libc::ENAMETOOLONG
        );
    }
}
