//! Typed errors of the engine. Every error names what was wrong; none of them
//! leaves a partial change behind.

use std::path::PathBuf;

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
    #[error("database {location}: {reason}")]
    Corrupt { location: String, reason: String },
    /// The database is locked by another process for longer than the timeout.
    #[error("database is busy (locked by another process); try again")]
    Busy,
    /// The filesystem holding the database is full.
    #[error("no space left on the device holding the database; nothing was committed")]
    NoSpace,
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
                ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked => return Error::Busy,
                ErrorCode::DiskFull => return Error::NoSpace,
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
        matches!(self, Error::Conflict { .. } | Error::Busy)
    }
}
