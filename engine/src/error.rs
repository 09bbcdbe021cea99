//! Typed errors of the engine. Every error names what was wrong; none of them
//! leaves a partial change behind.

use std::path::PathBuf;
use std::time::Duration;

/// Result alias used throughout the engine.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in the engine.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A path or name was rejected before anything was touched.
    #[error("invalid path {}: {reason}", crate::shown::quoted(path))]
    InvalidPath { path: String, reason: String },
    /// A config key was rejected.
    #[error("invalid config key {}: {reason}", crate::shown::quoted(key))]
    InvalidKey { key: String, reason: String },
    /// The path does not exist (at the moment being viewed).
    #[error("{}: no such file or directory", crate::shown::shown(.0))]
    NotFound(String),
    /// The path already exists.
    #[error("{0}: already exists")]
    AlreadyExists(String),
    /// A path component that must be a directory is not one.
    #[error("{0}: not a directory")]
    NotADirectory(String),
    /// A directory was given where a file is needed.
    #[error("{0}: is a directory")]
    IsADirectory(String),
    /// A directory with entries was removed without recursion.
    #[error("{0}: directory not empty")]
    DirectoryNotEmpty(String),
    /// A directory would be moved into itself.
    #[error("cannot move {from} into its own subdirectory {to}")]
    MoveIntoSelf { from: String, to: String },
    /// Too many symbolic links while resolving a path.
    #[error("{0}: too many levels of symbolic links")]
    SymlinkLoop(String),
    /// The root directory cannot be removed or replaced.
    #[error("the root directory cannot be removed or replaced")]
    RootImmutable,
    /// A write was attempted on a read-only (past) view.
    #[error("read-only view ({0}): writes are refused; create a branch from it to change it")]
    ReadOnly(String),
    /// Another transaction committed a change to what this one read or wrote.
    #[error("conflict: {path} was changed by T{tx} since this transaction began (at T{snapshot}); nothing was committed")]
    Conflict {
        path: String,
        tx: u64,
        snapshot: u64,
    },
    /// No such transaction.
    #[error("no such transaction T{0}")]
    NoSuchTransaction(u64),
    /// No transaction at or before the requested time.
    #[error("no transaction at or before {0}")]
    NoTransactionAtTime(String),
    /// A REF (a name for a moment) could not be read.
    #[error("bad REF {}: {reason}", crate::shown::quoted(text))]
    BadRef { text: String, reason: String },
    /// No such branch.
    #[error("no such branch: {}", crate::shown::shown(.0))]
    NoSuchBranch(String),
    /// A branch name is taken or malformed.
    #[error("invalid branch name {}: {reason}", crate::shown::quoted(name))]
    InvalidBranch { name: String, reason: String },
    /// The database was written by a newer dbos.
    #[error("database {location} has schema version {found}, newer than this dbos supports ({supported}); upgrade dbos. The database was not modified")]
    SchemaTooNew {
        location: String,
        found: u32,
        supported: u32,
    },
    /// The database file is not a dbos database or is damaged.
    #[error("database {}: {reason}", shown(location))]
    Corrupt { location: String, reason: String },
    /// The database is locked by another process for longer than the lock
    /// timeout (`DBOS_LOCK_TIMEOUT`, see `lock_timeout`).
    #[error("database {} is locked by another process (waited {waited_s} s); nothing was committed; try again", shown(location))]
    Busy { location: String, waited_s: f64 },
    /// The filesystem holding the database is full.
    #[error(
        "no space left on device holding database {}; nothing was committed",
        shown(location)
    )]
    NoSpace { location: String },
    /// The database cannot be written: its file or filesystem is read-only.
    #[error("database {} is read-only (read-only filesystem or file not writable): writes are refused, nothing was committed", shown(location))]
    ReadOnlyDatabase { location: String },
    /// The database file or its folder cannot be opened.
    #[error("cannot open database {}: {reason}", shown(location))]
    CannotOpen { location: String, reason: String },
    /// A host filesystem operation failed.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Reading or writing a content stream failed.
    #[error("content stream: {0}")]
    Stream(#[source] std::io::Error),
    /// The database reported an error.
    #[error("database error: {0}")]
    Database(String),
    /// An audit query was malformed, refused (it tried to write) or failed.
    #[error("{0}")]
    Sql(String),
}

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        use rusqlite::ffi::ErrorCode;
        if let rusqlite::Error::SqliteFailure(f, _) = &e {
            match f.code {
                ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked => {
                    return Error::Busy {
                        location: String::new(),
                        waited_s: lock_timeout().as_secs_f64(),
                    }
                }
                ErrorCode::DiskFull => {
                    return Error::NoSpace {
                        location: String::new(),
                    }
                }
                ErrorCode::ReadOnly => {
                    return Error::ReadOnlyDatabase {
                        location: String::new(),
                    }
                }
                ErrorCode::CannotOpen | ErrorCode::PermissionDenied => {
                    return Error::CannotOpen {
                        location: String::new(),
                        reason: e.to_string(),
                    }
                }
                ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt => {
                    return Error::Corrupt {
                        location: String::new(),
                        reason: e.to_string(),
                    }
                }
                _ => {}
            }
        }
        Error::Database(e.to_string())
    }
}

impl Error {
    /// True when retrying the same work later may succeed (conflict, busy).
    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::Conflict { .. } | Error::Busy { .. })
    }

    /// True when the error says the stored data is damaged.
    pub fn is_corrupt(&self) -> bool {
        matches!(self, Error::Corrupt { .. })
    }

    /// Name the database in an error raised where its location was not
    /// known (a storage error converted deep in a backend). Errors that
    /// already name it, and errors about other things, are unchanged.
    pub fn at(self, location: &str) -> Error {
        let fill = |l: String| {
            if l.is_empty() {
                location.to_string()
            } else {
                l
            }
        };
        match self {
            Error::Busy { location, waited_s } => Error::Busy {
                location: fill(location),
                waited_s,
            },
            Error::NoSpace { location } => Error::NoSpace {
                location: fill(location),
            },
            Error::ReadOnlyDatabase { location } => Error::ReadOnlyDatabase {
                location: fill(location),
            },
            Error::CannotOpen { location, reason } => Error::CannotOpen {
                location: fill(location),
                reason,
            },
            Error::Corrupt { location, reason } => Error::Corrupt {
                location: fill(location),
                reason,
            },
            other => other,
        }
    }
}

/// A location for a message: the path, or a placeholder when unknown.
fn shown(location: &str) -> &str {
    if location.is_empty() {
        "(this database)"
    } else {
        location
    }
}

/// How long a writer waits for another process's lock before giving up:
/// `DBOS_LOCK_TIMEOUT` seconds (fractions allowed), 10 s by default.
pub fn lock_timeout() -> Duration {
    static T: std::sync::OnceLock<Duration> = std::sync::OnceLock::new();
    *T.get_or_init(|| {
        std::env::var("DBOS_LOCK_TIMEOUT")
            .ok()
            .and_then(|v| v.trim().parse::<f64>().ok())
            .filter(|s| s.is_finite() && *s >= 0.0 && *s <= 86_400.0)
            .map(Duration::from_secs_f64)
            .unwrap_or(DEFAULT_LOCK_TIMEOUT)
    })
}

/// The lock timeout when `DBOS_LOCK_TIMEOUT` is not set.
pub const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(10);

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::ffi;

    fn sqlite(code: i32) -> Error {
        rusqlite::Error::SqliteFailure(ffi::Error::new(code), None).into()
    }

    #[test]
    fn storage_faults_are_typed_and_name_the_database() {
        let full = sqlite(ffi::SQLITE_FULL).at("/srv/state.db");
        assert!(matches!(full, Error::NoSpace { .. }));
        assert_eq!(
            full.to_string(),
            "no space left on device holding database /srv/state.db; nothing was committed"
        );
        let busy = sqlite(ffi::SQLITE_BUSY).at("/srv/state.db");
        assert!(busy.is_retryable());
        assert!(busy
            .to_string()
            .starts_with("database /srv/state.db is locked by another process (waited "));
        let ro = sqlite(ffi::SQLITE_READONLY).at("/srv/state.db");
        assert!(matches!(ro, Error::ReadOnlyDatabase { .. }));
        assert!(ro.to_string().contains("/srv/state.db is read-only"));
        let corrupt = sqlite(ffi::SQLITE_CORRUPT);
        assert!(corrupt.is_corrupt());
        assert!(corrupt
            .at("/a.db")
            .to_string()
            .starts_with("database /a.db: "));
    }

    #[test]
    fn a_known_location_is_kept() {
        let e = Error::NoSpace {
            location: "/first.db".into(),
        }
        .at("/second.db");
        assert!(e.to_string().contains("/first.db"));
        assert!(!Error::NotFound("/x".into())
            .at("/a.db")
            .to_string()
            .contains("/a.db"));
    }
}
