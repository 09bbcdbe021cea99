//! Typed errors of import and export, and the reasons an entry is skipped.

use std::fmt;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why an import or export stopped. Nothing is committed by the caller's
/// transaction when an import fails; an export may have written part of the
/// host directory before the error it names.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The host directory does not exist.
    #[error("{}: no such directory", show_host(.0))]
    HostMissing(PathBuf),
    /// The host path exists but is not a directory.
    #[error("{}: not a directory", show_host(.0))]
    HostNotADirectory(PathBuf),
    /// A host filesystem operation failed.
    #[error("{}: {source}", show_host(.path))]
    Host {
        /// The host path involved.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// The destination in the versioned tree exists and is not a directory.
    #[error("{0}: not a directory in the versioned tree")]
    NotADirectory(String),
    /// Export into a directory that already holds entries, without `force`.
    #[error("{}: directory is not empty (use --force to write into it)", show_host(.0))]
    NotEmpty(PathBuf),
    /// `strict` import and some entries cannot be imported: nothing was.
    #[error("{} {} cannot be imported (--strict): nothing was imported", .0.len(), if .0.len() == 1 { "entry" } else { "entries" })]
    Strict(Vec<Skipped>),
    /// The progress reporter asked to stop (Ctrl-C).
    #[error("interrupted")]
    Interrupted,
    /// The versioned tree refused a read or a write.
    #[error(transparent)]
    Engine(#[from] dbos_engine::Error),
}

/// A host entry that was not imported, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// The entry's path on the host.
    pub host_path: PathBuf,
    /// Why it was skipped.
    pub reason: SkipReason,
}

impl fmt::Display for Skipped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", show_host(&self.host_path), self.reason)
    }
}

/// Why a host entry cannot be held by the versioned tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SkipReason {
    /// Its name is not valid UTF-8 (tree names are text).
    NameNotUtf8,
    /// A symbolic link whose target text the tree cannot hold.
    BadTarget(String),
    /// A FIFO, socket or device: the tree holds files, directories and links.
    Special(&'static str),
    /// Its path in the versioned tree would be invalid (too long, ...).
    BadPath(String),
    /// Reading it failed (permission denied, changed while importing, ...).
    Unreadable(String),
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SkipReason::NameNotUtf8 => f.write_str("name is not valid UTF-8"),
            SkipReason::BadTarget(why) => write!(f, "symbolic link target {why}"),
            SkipReason::Special(kind) => write!(
                f,
                "{kind}: the versioned tree holds only files, directories and symbolic links"
            ),
            SkipReason::BadPath(why) => write!(f, "not a valid versioned path: {why}"),
            SkipReason::Unreadable(why) => write!(f, "cannot read: {why}"),
        }
    }
}

/// A host path as one line of text: valid UTF-8 as is, control characters
/// escaped (`\n`, `\u{1b}`), bytes that are not UTF-8 as `\xNN`.
pub fn show_host(path: &Path) -> String {
    let mut out = String::new();
    for chunk in path.as_os_str().as_bytes().utf8_chunks() {
        for c in chunk.valid().chars() {
            if c.is_control() || c == '\\' {
                out.extend(c.escape_default());
            } else {
                out.push(c);
            }
        }
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;

    #[test]
    fn host_paths_print_on_one_line() {
        let p = Path::new(OsStr::from_bytes(b"/a/b\nc/\xff\xfe\x1b"));
        assert_eq!(show_host(p), "/a/b\\nc/\\xff\\xfe\\u{1b}");
        assert_eq!(show_host(Path::new("/ok/été")), "/ok/été");
    }
}
