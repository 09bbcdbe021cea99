//! Import: make a directory of the versioned tree an exact copy of a host
//! directory, inside the caller's transaction.
//!
//! Two passes over the host tree. The first only counts (entries, bytes) and
//! finds what cannot be imported, so `strict` can refuse before anything is
//! read. The second compares each host entry with what the tree holds under
//! the same name (one `read_dir` per directory) and writes only what
//! differs: a file is unchanged when its mode, owner, mtime, size and
//! BLAKE3 digest all match the stored version (the file is read and hashed
//! whenever the size matches; a different size is a change without
//! hashing). Entries under the destination that the host no longer has are
//! removed; an entry that was skipped keeps whatever the tree holds.

use crate::error::{Error, Result, SkipReason, Skipped};
use crate::host::{HostDir, Stat};
use crate::walk::{walk, Kind, Listed, Step};
use crate::{Counted, Progress};
use dbos_engine::{Entry, Meta, Space, Txn, VPath};
use std::collections::{BTreeMap, HashSet};
use std::ffi::OsStr;
use std::io::{Read, Seek};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// How to import.
#[derive(Debug, Clone, Copy, Default)]
pub struct ImportOptions {
    /// Refuse the whole import (change nothing) if any entry would be
    /// skipped.
    pub strict: bool,
}

/// What an import did. Entries are files, directories and symbolic links;
/// the destination directory itself counts as one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportReport {
    /// Entries the tree did not have.
    pub added: u64,
    /// Entries whose kind, content, target, mode, owner or mtime changed.
    pub changed: u64,
    /// Entries removed because the host no longer has them.
    pub removed: u64,
    /// Entries already equal to the host's.
    pub unchanged: u64,
    /// Bytes of file content stored (new and changed files).
    pub bytes: u64,
    /// Host entries that were not imported, and why.
    pub skipped: Vec<Skipped>,
}

impl ImportReport {
    /// True when the import changed the tree.
    pub fn changed_anything(&self) -> bool {
        self.added + self.changed + self.removed > 0
    }
}

/// Open the host directory a user named, with errors that say what is wrong.
pub(crate) fn open_root(host: &Path) -> Result<HostDir> {
    HostDir::open(host).map_err(|e| match e.raw_os_error() {
        Some(libc::ENOENT) => Error::HostMissing(host.to_path_buf()),
        Some(libc::ENOTDIR) => Error::HostNotADirectory(host.to_path_buf()),
        _ => Error::Host {
            path: host.to_path_buf(),
            source: e,
        },
    })
}

fn meta_of(st: &Stat) -> Meta {
    Meta {
        mode: st.mode,
        uid: st.uid,
        gid: st.gid,
        mtime_ns: st.mtime_ns,
    }
}

fn meta_of_file(md: &std::fs::Metadata) -> Meta {
    Meta {
        mode: md.mode() & 0o7777,
        uid: md.uid(),
        gid: md.gid(),
        mtime_ns: md
            .mtime()
            .saturating_mul(1_000_000_000)
            .saturating_add(md.mtime_nsec()),
    }
}

/// `dest` with the names of `rel` below it.
fn join_all(dest: &VPath, rel: &[String]) -> Result<VPath> {
    let mut p = dest.clone();
    for n in rel {
        p = p.join(n)?;
    }
    Ok(p)
}

/// How many entries a stored entry stands for (a directory: with everything
/// below it).
fn subtree_len(tx: &mut Txn<'_>, path: &VPath, e: &Entry) -> Result<u64> {
    Ok(if e.is_dir() {
        tx.walk(path)?.len() as u64
    } else {
        1
    })
}

fn io_interrupted(progress: &dyn Progress, path: &Path, e: std::io::Error) -> Error {
    if progress.interrupted() {
        Error::Interrupted
    } else {
        Error::Host {
            path: path.to_path_buf(),
            source: e,
        }
    }
}

/// Import the host directory `host` (a symbolic link to a directory is
/// resolved; nothing below it is followed) into `dest`, which must be a
/// directory of the tree or not exist (it is created, with its missing
/// parents). Afterwards `dest` holds exactly what `host` holds (minus the
/// skipped entries, whose stored versions are kept): names, kinds, file
/// content, symbolic link targets, permission bits, owners and mtimes.
///
/// Only differences are written to `tx`: importing an unchanged tree writes
/// nothing. With `opts.strict`, any entry that cannot be imported fails the
/// import with [`Error::Strict`] before anything is written.
pub fn import(
    tx: &mut Txn<'_>,
    host: &Path,
    dest: &VPath,
    opts: &ImportOptions,
    progress: &mut dyn Progress,
) -> Result<ImportReport> {
    let root = open_root(host)?;
    let existing = tx.stat(dest)?;
    match &existing {
        None | Some(Entry::Dir { .. }) => {}
        Some(_) => return Err(Error::NotADirectory(dest.to_string())),
    }

    // Pass 1: count, and find what cannot be imported.
    let (entries, bytes, skipped) = scan(&root, dest, progress)?;
    if opts.strict && !skipped.is_empty() {
        progress.finish();
        return Err(Error::Strict(skipped));
    }
    progress.start(entries + 1, bytes);

    // Pass 2: write what differs.
    let mut report = ImportReport::default();
    let root_meta = meta_of(&root.stat_self().map_err(|e| Error::Host {
        path: host.to_path_buf(),
        source: e,
    })?);
    match existing {
        None => {
            if let Some(parent) = dest.parent() {
                tx.mkdir(&parent, true, 0o755)?;
            }
            tx.put(
                Space::File,
                dest.as_str(),
                Some(Entry::Dir { meta: root_meta }),
            )?;
            report.added += 1;
        }
        Some(Entry::Dir { meta }) if meta == root_meta => report.unchanged += 1,
        Some(_) => {
            tx.put(
                Space::File,
                dest.as_str(),
                Some(Entry::Dir { meta: root_meta }),
            )?;
            report.changed += 1;
        }
    }
    progress.advance(1, 0);

    let result = walk(&root, &mut |step| match step {
        Step::Unreadable(s) => {
            record_skip(&mut report, opts, s)?;
            Ok(Vec::new())
        }
        Step::Dir { rel, dir, listed } => {
            apply_dir(tx, dest, rel, dir, listed, opts, &mut report, progress)
        }
    });
    progress.finish();
    result?;
    Ok(report)
}

fn record_skip(report: &mut ImportReport, opts: &ImportOptions, s: Skipped) -> Result<()> {
    if opts.strict {
        return Err(Error::Strict(vec![s]));
    }
    report.skipped.push(s);
    Ok(())
}

/// Pass 1: entries (not counting the top), file bytes, and what would be
/// skipped.
fn scan(
    root: &HostDir,
    dest: &VPath,
    progress: &mut dyn Progress,
) -> Result<(u64, u64, Vec<Skipped>)> {
    let (mut entries, mut bytes) = (0u64, 0u64);
    let mut skipped = Vec::new();
    walk(root, &mut |step| {
        if progress.interrupted() {
            return Err(Error::Interrupted);
        }
        let (rel, dir, listed) = match step {
            Step::Unreadable(s) => {
                skipped.push(s);
                return Ok(Vec::new());
            }
            Step::Dir { rel, dir, listed } => (rel, dir, listed),
        };
        let vdir = join_all(dest, rel)?;
        let mut subdirs = Vec::new();
        for l in listed {
            match l {
                Listed::Skip { skipped: s, .. } => skipped.push(s),
                Listed::Entry { name, kind, stat } => {
                    if let Err(e) = vdir.join(&name) {
                        skipped.push(Skipped {
                            host_path: dir.child_path(OsStr::new(&name)),
                            reason: SkipReason::BadPath(e.to_string()),
                        });
                        continue;
                    }
                    entries += 1;
                    match kind {
                        Kind::File => bytes += stat.size,
                        Kind::Dir => subdirs.push(name),
                        Kind::Symlink(_) => {}
                    }
                }
            }
        }
        progress.scanning(entries, bytes);
        Ok(subdirs)
    })?;
    Ok((entries, bytes, skipped))
}

/// Pass 2 for one directory: write its entries that differ, and remove the
/// stored ones the host no longer has. Returns the subdirectories to visit.
#[allow(clippy::too_many_arguments)]
fn apply_dir(
    tx: &mut Txn<'_>,
    dest: &VPath,
    rel: &[String],
    dir: &HostDir,
    listed: Vec<Listed>,
    opts: &ImportOptions,
    report: &mut ImportReport,
    progress: &mut dyn Progress,
) -> Result<Vec<String>> {
    let vdir = join_all(dest, rel)?;
    let stored: BTreeMap<String, Entry> = tx.read_dir(&vdir)?.into_iter().collect();
    let mut seen: HashSet<String> = HashSet::with_capacity(listed.len());
    let mut subdirs = Vec::new();
    for l in listed {
        if progress.interrupted() {
            return Err(Error::Interrupted);
        }
        let (name, kind, stat) = match l {
            Listed::Skip { name, skipped } => {
                if let Some(n) = name {
                    seen.insert(n);
                }
                record_skip(report, opts, skipped)?;
                continue;
            }
            Listed::Entry { name, kind, stat } => (name, kind, stat),
        };
        seen.insert(name.clone());
        let host_path = dir.child_path(OsStr::new(&name));
        let vpath = match vdir.join(&name) {
            Ok(p) => p,
            Err(e) => {
                let s = Skipped {
                    host_path,
                    reason: SkipReason::BadPath(e.to_string()),
                };
                record_skip(report, opts, s)?;
                continue;
            }
        };
        let old = stored.get(&name);
        let new = match kind {
            Kind::Dir => {
                subdirs.push(name.clone());
                Entry::Dir {
                    meta: meta_of(&stat),
                }
            }
            Kind::Symlink(target) => Entry::Symlink {
                meta: meta_of(&stat),
                target,
            },
            Kind::File => match import_file(tx, dir, &name, &host_path, old, progress)? {
                FileOutcome::Entry(e) => e,
                FileOutcome::Skip(reason) => {
                    let s = Skipped { host_path, reason };
                    record_skip(report, opts, s)?;
                    continue;
                }
            },
        };
        match old {
            Some(o) if *o == new => report.unchanged += 1,
            Some(o) => {
                // A directory replaced by something else goes with its content.
                if o.is_dir() && !new.is_dir() {
                    report.removed += subtree_len(tx, &vpath, o)? - 1;
                    tx.remove(&vpath, true)?;
                }
                if let Entry::File { content, .. } = &new {
                    if !matches!(o, Entry::File { content: oc, .. } if oc == content) {
                        report.bytes += content.size;
                    }
                }
                tx.put(Space::File, vpath.as_str(), Some(new))?;
                report.changed += 1;
            }
            None => {
                if let Entry::File { content, .. } = &new {
                    report.bytes += content.size;
                }
                tx.put(Space::File, vpath.as_str(), Some(new))?;
                report.added += 1;
            }
        }
        progress.advance(1, 0);
    }
    for (name, e) in &stored {
        if seen.contains(name) {
            continue;
        }
        let vpath = vdir.join(name)?;
        report.removed += subtree_len(tx, &vpath, e)?;
        tx.remove(&vpath, true)?;
    }
    Ok(subdirs)
}

enum FileOutcome {
    Entry(Entry),
    Skip(SkipReason),
}

/// The entry a host file should have: the stored content when its digest
/// matches, else the file's content stored anew.
fn import_file(
    tx: &mut Txn<'_>,
    dir: &HostDir,
    name: &str,
    host_path: &Path,
    old: Option<&Entry>,
    progress: &mut dyn Progress,
) -> Result<FileOutcome> {
    let mut file = match dir.open_file(OsStr::new(name)) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(FileOutcome::Skip(SkipReason::Unreadable(
                "removed while importing".into(),
            )))
        }
        Err(e) => return Ok(FileOutcome::Skip(SkipReason::Unreadable(e.to_string()))),
    };
    // The metadata of the file actually read, not of the earlier listing.
    let md = file.metadata().map_err(|e| Error::Host {
        path: host_path.to_path_buf(),
        source: e,
    })?;
    let meta = meta_of_file(&md);
    let mut counted_already = false;
    if let Some(Entry::File { content, .. }) = old {
        if content.size == md.len() {
            let mut hasher = blake3::Hasher::new();
            let mut reader = Counted {
                inner: &mut file,
                progress: &mut *progress,
            };
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = match reader.read(&mut buf) {
                    Ok(n) => n,
                    Err(e) => return Err(io_interrupted(&*reader.progress, host_path, e)),
                };
                if n == 0 {
                    break;
                }
                hasher.update(&buf[..n]);
            }
            if *hasher.finalize().as_bytes() == content.digest {
                return Ok(FileOutcome::Entry(Entry::File {
                    meta,
                    content: content.clone(),
                }));
            }
            file.rewind().map_err(|e| Error::Host {
                path: host_path.to_path_buf(),
                source: e,
            })?;
            counted_already = true;
        }
    }
    let stored = if counted_already {
        tx.store_content(&mut file)
    } else {
        tx.store_content(Counted {
            inner: &mut file,
            progress: &mut *progress,
        })
    };
    let content = match stored {
        Ok(c) => c,
        Err(dbos_engine::Error::Stream(e)) => return Err(io_interrupted(&*progress, host_path, e)),
        Err(e) => return Err(e.into()),
    };
    Ok(FileOutcome::Entry(Entry::File { meta, content }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::NoProgress;
    use dbos_engine::{Actor, Engine};
    use std::fs;
    use std::os::unix::fs::{symlink, PermissionsExt};

    fn engine(dir: &Path) -> Engine {
        Engine::open(&dir.join("s.db").display().to_string()).unwrap()
    }

    /// Import `host` into `/d` in one transaction; the report and whether
    /// a transaction was recorded.
    fn run(e: &mut Engine, host: &Path, opts: ImportOptions) -> (Result<ImportReport>, bool) {
        let mut tx = e.begin("main", &Actor::default()).unwrap();
        let dest = VPath::parse("/d").unwrap();
        let r = import(&mut tx, host, &dest, &opts, &mut NoProgress);
        if r.is_err() {
            return (r, false);
        }
        let committed = tx.commit("import", None).unwrap().is_some();
        (r, committed)
    }

    fn tree(root: &Path) {
        fs::create_dir_all(root.join("a/b")).unwrap();
        fs::write(root.join("a/f"), b"content").unwrap();
        fs::write(root.join("g"), b"").unwrap();
        symlink("a/f", root.join("l")).unwrap();
    }

    #[test]
    fn counts_and_only_differences() {
        let tmp = tempfile::tempdir().unwrap();
        let host = tmp.path().join("h");
        tree(&host);
        let mut e = engine(tmp.path());
        let (r, committed) = run(&mut e, &host, ImportOptions::default());
        let r = r.unwrap();
        assert!(committed);
        // /d, a, a/b, a/f, g, l
        assert_eq!((r.added, r.changed, r.removed, r.unchanged), (6, 0, 0, 0));
        assert_eq!(r.bytes, 7);

        let (r, committed) = run(&mut e, &host, ImportOptions::default());
        assert_eq!(r.unwrap().unchanged, 6);
        assert!(!committed, "an unchanged tree records no transaction");

        // Mode only: the content is reused, not read into new chunks.
        fs::set_permissions(host.join("a/f"), fs::Permissions::from_mode(0o600)).unwrap();
        let (r, committed) = run(&mut e, &host, ImportOptions::default());
        let r = r.unwrap();
        assert!(committed);
        assert_eq!((r.changed, r.bytes), (1, 0));

        // A directory removed on the host goes with everything in it.
        fs::remove_dir_all(host.join("a")).unwrap();
        let (r, _) = run(&mut e, &host, ImportOptions::default());
        let r = r.unwrap();
        assert_eq!(r.removed, 3, "a, a/b, a/f");
        assert_eq!(r.changed, 1, "/d's mtime");
        let mut view = e.begin("main", &Actor::default()).unwrap();
        let names: Vec<String> = view
            .read_dir(&VPath::parse("/d").unwrap())
            .unwrap()
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert_eq!(names, ["g", "l"]);
    }

    #[test]
    fn strict_refuses_before_writing() {
        let tmp = tempfile::tempdir().unwrap();
        let host = tmp.path().join("h");
        tree(&host);
        let _sock = std::os::unix::net::UnixListener::bind(host.join("a/sock")).unwrap();
        let mut e = engine(tmp.path());
        let (r, _) = run(&mut e, &host, ImportOptions { strict: true });
        match r {
            Err(Error::Strict(s)) => {
                assert_eq!(s.len(), 1);
                assert_eq!(s[0].host_path, host.join("a/sock"));
                assert_eq!(s[0].reason, SkipReason::Special("a socket"));
            }
            other => panic!("{other:?}"),
        }
        let (r, committed) = run(&mut e, &host, ImportOptions::default());
        assert_eq!(r.unwrap().skipped.len(), 1);
        assert!(committed);
    }

    struct StopAfter(u64, u64);
    impl Progress for StopAfter {
        fn advance(&mut self, entries: u64, _bytes: u64) {
            self.1 += entries;
        }
        fn interrupted(&self) -> bool {
            self.1 >= self.0
        }
    }

    #[test]
    fn interruption_stops_with_an_error() {
        let tmp = tempfile::tempdir().unwrap();
        let host = tmp.path().join("h");
        tree(&host);
        let mut e = engine(tmp.path());
        let mut tx = e.begin("main", &Actor::default()).unwrap();
        let dest = VPath::parse("/d").unwrap();
        let r = import(
            &mut tx,
            &host,
            &dest,
            &ImportOptions::default(),
            &mut StopAfter(2, 0),
        );
        assert!(matches!(r, Err(Error::Interrupted)), "{r:?}");
    }

    /// Swaps entries between the counting pass and the writing pass.
    struct Swap(std::path::PathBuf);
    impl Progress for Swap {
        fn start(&mut self, _entries: u64, _bytes: u64) {
            let h = &self.0;
            // A directory becomes a symbolic link to /, a file
            // becomes a directory.
            fs::remove_dir_all(h.join("a")).unwrap();
            symlink("/", h.join("a")).unwrap();
            fs::remove_file(h.join("g")).unwrap();
            fs::create_dir(h.join("g")).unwrap();
        }
    }

    #[test]
    fn entries_changed_during_the_import_are_taken_as_found() {
        let tmp = tempfile::tempdir().unwrap();
        let host = tmp.path().join("h");
        tree(&host);
        let mut e = engine(tmp.path());
        let mut tx = e.begin("main", &Actor::default()).unwrap();
        let dest = VPath::parse("/d").unwrap();
        let mut swap = Swap(host.clone());
        let r = import(&mut tx, &host, &dest, &ImportOptions::default(), &mut swap).unwrap();
        assert!(r.skipped.is_empty(), "{:?}", r.skipped);
        let a = tx.stat(&VPath::parse("/d/a").unwrap()).unwrap();
        assert!(matches!(a, Some(Entry::Symlink { target, .. }) if target == "/"));
        let g = tx.stat(&VPath::parse("/d/g").unwrap()).unwrap();
        assert!(matches!(g, Some(Entry::Dir { .. })));
        assert!(tx.stat(&VPath::parse("/d/a/f").unwrap()).unwrap().is_none());
    }

    #[test]
    fn bad_hosts_are_named() {
        let tmp = tempfile::tempdir().unwrap();
        let mut e = engine(tmp.path());
        let missing = tmp.path().join("missing");
        let (r, _) = run(&mut e, &missing, ImportOptions::default());
        assert!(matches!(r, Err(Error::HostMissing(p)) if p == missing));
        let file = tmp.path().join("file");
        fs::write(&file, b"x").unwrap();
        let (r, _) = run(&mut e, &file, ImportOptions::default());
        assert!(matches!(r, Err(Error::HostNotADirectory(p)) if p == file));
    }
}
