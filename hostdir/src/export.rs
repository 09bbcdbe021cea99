//! Export: write a file or directory of the versioned tree, as some
//! transaction or view sees it (present or past), out as a real directory
//! tree on the host.
//!
//! Safety: the host directory is opened once; everything below it is
//! created with `mkdirat`, `symlinkat` and `openat(O_CREAT | O_EXCL |
//! O_NOFOLLOW)` relative to directory handles themselves opened with
//! `O_NOFOLLOW`, one checked name (never empty, `.`, `..`, nor containing
//! `/`) at a time. So no name or symbolic link in the tree, and no symbolic
//! link already in the host directory, can make it write elsewhere. With
//! `force`, an entry in the way is removed (a symbolic link as a link), never
//! written through.
//!
//! Directories are created `0700` and get their own mode and mtime after
//! everything in them is written (deepest first).

use crate::error::{Error, Result};
use crate::host::{set_fd_meta, HostDir, HostKind};
use crate::import::open_root;
use crate::{Counted, Progress};
use dbos_engine::{Entry, Meta, Txn, VPath};
use std::ffi::OsStr;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

/// How to export.
#[derive(Debug, Clone, Copy, Default)]
pub struct ExportOptions {
    /// Write into a host directory that already holds entries, replacing
    /// those in the way.
    pub force: bool,
    /// Give entries their recorded owner and group (needs privileges).
    pub owner: bool,
}

/// What an export wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExportReport {
    /// Directories created (or, with `force`, reused), the top not counted.
    pub dirs: u64,
    /// Regular files written.
    pub files: u64,
    /// Symbolic links created.
    pub symlinks: u64,
    /// Bytes of file content written.
    pub bytes: u64,
}

fn host_err(path: PathBuf) -> impl FnOnce(std::io::Error) -> Error {
    move |source| Error::Host { path, source }
}

/// Open (or create) the host directory to export into.
fn open_target(host: &Path, force: bool) -> Result<HostDir> {
    match open_root(host) {
        Ok(dir) => {
            let names = dir.list().map_err(host_err(host.to_path_buf()))?;
            if !names.is_empty() && !force {
                return Err(Error::NotEmpty(host.to_path_buf()));
            }
            Ok(dir)
        }
        Err(Error::HostMissing(_)) => {
            std::fs::create_dir(host).map_err(host_err(host.to_path_buf()))?;
            open_root(host)
        }
        Err(e) => Err(e),
    }
}

/// Write `src` as `tx` sees it into the host directory `host` (created when
/// missing; its parent must exist). A directory's entries go directly into
/// `host`, which also gets the directory's mode and mtime; a file or
/// symbolic link goes into `host` under its own name. Content, permission
/// bits (setuid, setgid and sticky included), mtimes (nanoseconds) and
/// symbolic link targets are reproduced; owners too with `opts.owner`.
///
/// `host` must be empty unless `opts.force`. On error, what was already
/// written stays (the message names the failing host path).
pub fn export(
    tx: &mut Txn<'_>,
    src: &VPath,
    host: &Path,
    opts: &ExportOptions,
    progress: &mut dyn Progress,
) -> Result<ExportReport> {
    let top = tx.entry(src)?;
    // What to write: names below the host directory, tree path, entry.
    let plan: Vec<(Vec<String>, VPath, Entry)> = if top.is_dir() {
        let depth = src.components().count();
        tx.walk(src)?
            .into_iter()
            .skip(1)
            .map(|(p, e)| {
                let rel = p.components().skip(depth).map(str::to_string).collect();
                (rel, p, e)
            })
            .collect()
    } else {
        vec![(vec![src.name().to_string()], src.clone(), top.clone())]
    };
    let total_bytes = plan.iter().map(|(_, _, e)| match e {
        Entry::File { content, .. } => content.size,
        _ => 0,
    });
    progress.start(plan.len() as u64, total_bytes.sum());

    let root = open_target(host, opts.force)?;
    let result = write_all(tx, &root, &plan, opts, progress);
    progress.finish();
    let (report, dirs) = result?;

    // Directory modes and mtimes last, deepest first: writing into a
    // directory changes its mtime, and a read-only mode would stop the
    // writes.
    let owner = |m: &Meta| opts.owner.then_some((m.uid, m.gid));
    for (rel, meta) in dirs.iter().rev() {
        let mut path = host.to_path_buf();
        path.extend(rel);
        let d = root.open_descendant(rel).map_err(host_err(path.clone()))?;
        set_fd_meta(d.raw(), meta.mode, meta.mtime_ns, owner(meta)).map_err(host_err(path))?;
    }
    if let Entry::Dir { meta } = &top {
        set_fd_meta(root.raw(), meta.mode, meta.mtime_ns, owner(meta))
            .map_err(host_err(host.to_path_buf()))?;
    }
    Ok(report)
}

type Written = (ExportReport, Vec<(Vec<String>, Meta)>);

fn write_all(
    tx: &mut Txn<'_>,
    root: &HostDir,
    plan: &[(Vec<String>, VPath, Entry)],
    opts: &ExportOptions,
    progress: &mut dyn Progress,
) -> Result<Written> {
    let mut report = ExportReport::default();
    let mut dirs: Vec<(Vec<String>, Meta)> = Vec::new();
    // The directory the previous entry went into, to reuse for its siblings.
    let mut parent: Option<(&[String], HostDir)> = None;
    for (rel, vpath, entry) in plan {
        if progress.interrupted() {
            return Err(Error::Interrupted);
        }
        let Some((last, parent_rel)) = rel.split_last() else {
            continue;
        };
        let name = OsStr::new(last);
        let host_path = {
            let mut p = root.path().to_path_buf();
            p.extend(rel);
            p
        };
        let reuse = matches!(&parent, Some((r, _)) if *r == parent_rel);
        if !reuse {
            let mut parent_path = root.path().to_path_buf();
            parent_path.extend(parent_rel);
            let d = root
                .open_descendant(parent_rel)
                .map_err(host_err(parent_path))?;
            parent = Some((parent_rel, d));
        }
        let Some((_, dir)) = &parent else {
            continue;
        };
        let mut exists_as_dir = false;
        if opts.force {
            match dir.lstat(name) {
                Ok(st) if st.kind == HostKind::Dir && entry.is_dir() => exists_as_dir = true,
                Ok(_) => dir.remove(name).map_err(host_err(host_path.clone()))?,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(host_err(host_path)(e)),
            }
        }
        match entry {
            Entry::Dir { meta } => {
                if !exists_as_dir {
                    dir.make_dir(name, 0o700)
                        .map_err(host_err(host_path.clone()))?;
                }
                dirs.push((rel.clone(), *meta));
                report.dirs += 1;
            }
            Entry::File { meta, content } => {
                let mut out = dir.create_file(name).map_err(host_err(host_path.clone()))?;
                let mut reader = Counted {
                    inner: tx.open(vpath)?,
                    progress: &mut *progress,
                };
                std::io::copy(&mut reader, &mut out).map_err(|e| {
                    if progress.interrupted() {
                        Error::Interrupted
                    } else {
                        host_err(host_path.clone())(e)
                    }
                })?;
                let owner = opts.owner.then_some((meta.uid, meta.gid));
                set_fd_meta(out.as_raw_fd(), meta.mode, meta.mtime_ns, owner)
                    .map_err(host_err(host_path))?;
                report.files += 1;
                report.bytes += content.size;
            }
            Entry::Symlink { meta, target } => {
                dir.make_symlink(OsStr::new(target), name)
                    .map_err(host_err(host_path.clone()))?;
                let owner = opts.owner.then_some((meta.uid, meta.gid));
                dir.set_link_meta(name, meta.mtime_ns, owner)
                    .map_err(host_err(host_path))?;
                report.symlinks += 1;
            }
            Entry::Value(_) => {}
        }
        progress.advance(1, 0);
    }
    Ok((report, dirs))
}
