//! Walking a host directory tree without following symbolic links, in
//! sorted depth-first order, one directory at a time.
//!
//! Each directory is reopened from the top handle name by name with
//! `O_NOFOLLOW`, so at most two descriptors are open whatever the depth, and
//! a directory swapped for a symbolic link while the walk runs is refused,
//! not followed.

use crate::error::{Result, SkipReason, Skipped};
use crate::host::{HostDir, HostKind, Stat};
use std::ffi::OsString;

/// What one entry of a listed directory is, as far as the tree is concerned.
pub(crate) enum Kind {
    Dir,
    File,
    Symlink(String),
}

/// One entry of a listed directory.
pub(crate) enum Listed {
    /// An entry the tree can hold.
    Entry {
        name: String,
        kind: Kind,
        stat: Stat,
    },
    /// An entry that cannot be imported. `name` is its name when it is text,
    /// so an importer keeps what the tree already holds under that name.
    Skip {
        name: Option<String>,
        skipped: Skipped,
    },
}

/// Classify one name of `dir`. `None`: the entry vanished since listing.
fn classify(dir: &HostDir, os_name: OsString) -> Option<Listed> {
    let host_path = dir.child_path(&os_name);
    let skip = |name: Option<String>, reason: SkipReason| {
        Some(Listed::Skip {
            name,
            skipped: Skipped {
                host_path: host_path.clone(),
                reason,
            },
        })
    };
    let stat = match dir.lstat(&os_name) {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => {
            let name = os_name.to_str().map(str::to_string);
            return skip(name, SkipReason::Unreadable(e.to_string()));
        }
    };
    let name = match os_name.to_str() {
        Some(n) => n.to_string(),
        None => return skip(None, SkipReason::NameNotUtf8),
    };
    let kind = match stat.kind {
        HostKind::Dir => Kind::Dir,
        HostKind::File => Kind::File,
        HostKind::Symlink => match dir.read_link(&os_name) {
            Ok(t) => match t.into_string() {
                Ok(t) if t.is_empty() => {
                    return skip(Some(name), SkipReason::BadTarget("is empty".into()))
                }
                Ok(t) if t.len() > dbos_engine::path::MAX_PATH => {
                    return skip(
                        Some(name),
                        SkipReason::BadTarget(format!(
                            "is longer than {} bytes",
                            dbos_engine::path::MAX_PATH
                        )),
                    )
                }
                Ok(t) => Kind::Symlink(t),
                Err(_) => {
                    return skip(
                        Some(name),
                        SkipReason::BadTarget("is not valid UTF-8".into()),
                    )
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
            Err(e) => return skip(Some(name), SkipReason::Unreadable(e.to_string())),
        },
        HostKind::Fifo => return skip(Some(name), SkipReason::Special("a FIFO")),
        HostKind::Socket => return skip(Some(name), SkipReason::Special("a socket")),
        HostKind::CharDevice => return skip(Some(name), SkipReason::Special("a character device")),
        HostKind::BlockDevice => return skip(Some(name), SkipReason::Special("a block device")),
        HostKind::Unknown => {
            return skip(Some(name), SkipReason::Special("an entry of unknown type"))
        }
    };
    Some(Listed::Entry { name, kind, stat })
}

/// One step of a walk.
pub(crate) enum Step<'a> {
    /// A directory: its names below the root, its open handle and its
    /// classified entries.
    Dir {
        rel: &'a [String],
        dir: &'a HostDir,
        listed: Vec<Listed>,
    },
    /// A directory that could not be opened or listed (not descended).
    Unreadable(Skipped),
}

/// Walk the tree below `root` depth first, in sorted order. `visit` gets
/// each step and, for a directory, returns the names of the subdirectories
/// to descend into.
pub(crate) fn walk(
    root: &HostDir,
    visit: &mut dyn FnMut(Step<'_>) -> Result<Vec<String>>,
) -> Result<()> {
    let mut stack: Vec<Vec<String>> = vec![Vec::new()];
    while let Some(rel) = stack.pop() {
        let mut host_path = root.path().to_path_buf();
        host_path.extend(&rel);
        let unreadable = |e: std::io::Error| {
            Step::Unreadable(Skipped {
                host_path: host_path.clone(),
                reason: SkipReason::Unreadable(e.to_string()),
            })
        };
        let opened;
        let dir = if rel.is_empty() {
            root
        } else {
            match root.open_descendant(&rel) {
                Ok(d) => {
                    opened = d;
                    &opened
                }
                Err(e) => {
                    visit(unreadable(e))?;
                    continue;
                }
            }
        };
        let names = match dir.list() {
            Ok(n) => n,
            Err(e) => {
                visit(unreadable(e))?;
                continue;
            }
        };
        let listed: Vec<Listed> = names.into_iter().filter_map(|n| classify(dir, n)).collect();
        let subdirs = visit(Step::Dir {
            rel: &rel,
            dir,
            listed,
        })?;
        for name in subdirs.into_iter().rev() {
            let mut sub = rel.clone();
            sub.push(name);
            stack.push(sub);
        }
    }
    Ok(())
}
