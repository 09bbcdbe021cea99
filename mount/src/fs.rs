//! The filesystem: each FUSE operation translated into engine calls.
//!
//! [`Core`] holds the engine and the mount's state and does the work; it
//! lives on the engine thread (see `worker`). [`DbosFs`] is the
//! `fuser::Filesystem` the kernel talks to: each handler captures what the
//! request says (caller uid, gid, pid and the arguments), runs the matching
//! `Core` method on the engine thread and replies with its result or errno.
//! No handler can panic the mount: every failure becomes an errno.
//!
//! Attribute and entry replies carry a 1 second TTL: the kernel may serve
//! `stat` from its cache for up to a second, so a change committed by
//! another writer (the shell, another mount) shows within a second, while
//! tools that stat the same path many times do not each cost a database
//! read. Changes made through this mount are seen at once (the kernel
//! updates or drops its cache on every reply that changes them).

use crate::commit::{command, Committer};
use crate::error::{errno_of, is_serious};
use crate::handles::{Buffer, ChunkCursor, Handle, Handles, Listing, Opener};
use crate::inodes::{InodeTable, ROOT_INO};
use crate::worker::Worker;
use dbos_engine::{Actor, Engine, Entry, Error as EngineError, Meta, TxState, Txn, VPath};
use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo,
    KernelConfig, LockOwner, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData,
    ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, Request, TimeOrNow,
    WriteFlags,
};
use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How long the kernel may cache attributes and names (see module doc).
pub const TTL: Duration = Duration::from_secs(1);

/// Result of a `Core` operation: a value or an errno.
pub type FsResult<T> = Result<T, i32>;

/// Who made a request.
#[derive(Clone, Copy, Debug)]
pub struct Caller {
    /// User id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
    /// Process id (0: the kernel).
    pub pid: u32,
}

impl Caller {
    fn of(req: &Request) -> Caller {
        Caller {
            uid: req.uid(),
            gid: req.gid(),
            pid: req.pid(),
        }
    }

    fn who(&self) -> String {
        Opener::of_pid(self.pid).describe()
    }
}

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos().min(i64::MAX as u128) as i64)
        .unwrap_or(0)
}

fn time_of(ns: i64) -> SystemTime {
    if ns >= 0 {
        UNIX_EPOCH + Duration::from_nanos(ns as u64)
    } else {
        UNIX_EPOCH
            .checked_sub(Duration::from_nanos(ns.unsigned_abs()))
            .unwrap_or(UNIX_EPOCH)
    }
}

fn ns_of(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_nanos().min(i64::MAX as u128) as i64,
        Err(e) => -(e.duration().as_nanos().min(i64::MAX as u128) as i64),
    }
}

fn kind_of(e: &Entry) -> FileType {
    match e {
        Entry::Dir { .. } => FileType::Directory,
        Entry::Symlink { .. } => FileType::Symlink,
        _ => FileType::RegularFile,
    }
}

/// The engine error as an errno, logged when it means trouble.
fn fail(op: &str, path: &str, e: EngineError) -> i32 {
    if is_serious(&e) {
        eprintln!("dbos mount: {op} {path}: {e}");
    }
    errno_of(&e)
}

fn io_fail(op: &str, e: std::io::Error) -> i32 {
    eprintln!("dbos mount: {op}: {e}");
    e.raw_os_error().unwrap_or(libc::EIO)
}

/// The engine, the mount's tables and its commit rule, on the engine thread.
pub struct Core {
    engine: Engine,
    committer: Committer,
    /// For a mount of a past moment: the read-only view (kept between
    /// requests for its read cache) and its label.
    past: Option<TxState>,
    inodes: InodeTable,
    handles: Handles,
    cursors: HashMap<u64, ChunkCursor>,
    /// The mount's own uid and gid (owner of a file re-created by a late
    /// commit).
    owner: (u32, u32),
    /// Set at shutdown: pending data is committed, later writes refused.
    closing: bool,
}

impl Core {
    /// Mount state over `engine`: writing `committer.branch`, or with
    /// `past` reading that read-only view (and refusing every write).
    pub fn new(engine: Engine, committer: Committer, past: Option<TxState>) -> Core {
        // SAFETY: geteuid/getegid have no preconditions and cannot fail.
        let owner = unsafe { (libc::geteuid(), libc::getegid()) };
        Core {
            engine,
            committer,
            past,
            inodes: InodeTable::new(),
            handles: Handles::default(),
            cursors: HashMap::new(),
            owner,
            closing: false,
        }
    }

    fn read_only(&self) -> bool {
        self.past.is_some()
    }

    fn check_writable(&self) -> FsResult<()> {
        if self.read_only() {
            Err(libc::EROFS)
        } else if self.closing {
            Err(libc::EIO)
        } else {
            Ok(())
        }
    }

    /// Run `f` on what the mount reads: the past view, or a fresh
    /// transaction on the branch head (never committed).
    fn view<T>(
        &mut self,
        f: impl FnOnce(&mut Txn<'_>) -> dbos_engine::Result<T>,
    ) -> dbos_engine::Result<T> {
        if let Some(st) = self.past.take() {
            let mut view = self.engine.resume(st);
            let out = f(&mut view);
            self.past = Some(view.into_state());
            return out;
        }
        let branch = self.committer.branch.clone();
        let mut tx = self.engine.begin(&branch, &Actor::default())?;
        f(&mut tx)
    }

    /// Commit `work` as one transaction (the metadata rule).
    fn commit<T>(
        &mut self,
        caller: &Caller,
        command: &str,
        work: impl FnMut(&mut Txn<'_>) -> dbos_engine::Result<T>,
    ) -> dbos_engine::Result<T> {
        let c = self.committer.clone();
        c.run(&mut self.engine, caller.uid, caller.gid, command, work)
            .map(|(t, _)| t)
    }

    fn path_of(&self, ino: u64) -> FsResult<VPath> {
        self.inodes.path(ino).cloned().ok_or(libc::ENOENT)
    }

    fn child(&self, parent: u64, name: &OsStr) -> FsResult<VPath> {
        let dir = self.path_of(parent)?;
        let name = name.to_str().ok_or(libc::EINVAL)?;
        dir.join(name).map_err(|e| errno_of(&e))
    }

    fn attr(&self, ino: u64, e: &Entry, nlink: u32) -> FileAttr {
        let meta = e.meta().copied().unwrap_or(Meta {
            mode: 0,
            uid: 0,
            gid: 0,
            mtime_ns: 0,
        });
        let (size, mtime) = match (self.handles.buffer(ino), e) {
            (Some(b), Entry::File { .. }) => (b.size, b.mtime_ns.unwrap_or(b.changed_ns)),
            _ => (e.size(), meta.mtime_ns),
        };
        let t = time_of(mtime);
        FileAttr {
            ino: INodeNo(ino),
            size,
            blocks: size.div_ceil(512),
            atime: t,
            mtime: t,
            ctime: t,
            crtime: t,
            kind: kind_of(e),
            perm: (meta.mode & 0o7777) as u16,
            nlink,
            uid: meta.uid,
            gid: meta.gid,
            rdev: 0,
            blksize: 4096,
            flags: 0,
        }
    }

    /// The entry at `path` and its link count (directories: 2 + subdirectories).
    fn stat(&mut self, path: &VPath) -> dbos_engine::Result<(Entry, u32)> {
        self.view(|tx| {
            let e = tx.entry(path)?;
            let nlink = if e.is_dir() {
                let subdirs = tx
                    .read_dir(path)?
                    .iter()
                    .filter(|(_, k)| k.is_dir())
                    .count();
                2 + subdirs.min(u32::MAX as usize - 2) as u32
            } else {
                1
            };
            Ok((e, nlink))
        })
    }

    fn attr_of_path(&mut self, ino: u64, path: &VPath) -> FsResult<FileAttr> {
        let (e, nlink) = self
            .stat(path)
            .map_err(|e| fail("stat", path.as_str(), e))?;
        Ok(self.attr(ino, &e, nlink))
    }

    /// FUSE lookup: a name in a directory, counting a kernel reference.
    pub fn lookup(&mut self, parent: u64, name: &OsStr) -> FsResult<FileAttr> {
        let path = self.child(parent, name)?;
        let (e, nlink) = self
            .stat(&path)
            .map_err(|e| fail("lookup", path.as_str(), e))?;
        let ino = self.inodes.lookup(&path);
        Ok(self.attr(ino, &e, nlink))
    }

    /// FUSE forget.
    pub fn forget(&mut self, ino: u64, n: u64) {
        self.inodes.forget(ino, n);
        if !self.inodes.contains(ino) {
            self.cursors.remove(&ino);
        }
    }

    /// FUSE getattr (also for a file unlinked while open).
    pub fn getattr(&mut self, ino: u64) -> FsResult<FileAttr> {
        match self.inodes.path(ino).cloned() {
            Some(p) => self.attr_of_path(ino, &p),
            None => match self.handles.entry_of(ino).cloned() {
                Some(e) => Ok(self.attr(ino, &e, 0)),
                None => Err(libc::ENOENT),
            },
        }
    }

    /// The inode's buffer, made from its current content if it has none.
    fn ensure_buffer(&mut self, ino: u64, fh: Option<u64>) -> FsResult<()> {
        if self.handles.buffer(ino).is_some() {
            return Ok(());
        }
        let content = match self.inodes.path(ino).cloned() {
            Some(path) => match self.view(|tx| tx.entry(&path)) {
                Ok(Entry::File { content, .. }) => Some(content),
                Ok(Entry::Dir { .. }) => return Err(libc::EISDIR),
                Ok(_) => return Err(libc::EINVAL),
                Err(EngineError::NotFound(_)) => None,
                Err(e) => return Err(fail("open", path.as_str(), e)),
            },
            None => None,
        };
        let content = content.or_else(|| {
            fh.and_then(|f| self.handles.get(f))
                .and_then(|h| match &h.entry {
                    Some(Entry::File { content, .. }) => Some(content.clone()),
                    _ => None,
                })
        });
        let now = now_ns();
        let buf = match content {
            Some(c) if c.size > 0 => {
                let chunks = c.chunks.clone();
                let copied = self.view(|tx| {
                    let mut data = Vec::new();
                    // Stream chunk by chunk into the temporary file.
                    let mut b = Buffer::empty(now).map_err(EngineError::Stream)?;
                    for ch in chunks.iter() {
                        data.clear();
                        data.extend(tx.read_chunk(*ch)?);
                        let at = b.size;
                        b.write_at(at, &data).map_err(EngineError::Stream)?;
                    }
                    Ok(b)
                });
                copied.map_err(|e| fail("read", "content", e))?
            }
            _ => Buffer::empty(now).map_err(|e| io_fail("temporary file", e))?,
        };
        self.handles.set_buffer(ino, buf);
        Ok(())
    }

    /// FUSE setattr: chmod, chown, truncate, utimens, in one transaction
    /// (a truncate of a file open for writing goes to its buffer).
    #[allow(clippy::too_many_arguments)]
    pub fn setattr(
        &mut self,
        caller: &Caller,
        ino: u64,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        mtime: Option<TimeOrNow>,
        fh: Option<u64>,
    ) -> FsResult<FileAttr> {
        let changes = mode.is_some() || uid.is_some() || gid.is_some() || size.is_some();
        if changes || mtime.is_some() {
            self.check_writable()?;
        }
        let mtime_ns = mtime.map(|t| match t {
            TimeOrNow::Now => now_ns(),
            TimeOrNow::SpecificTime(t) => ns_of(t),
        });
        let mut size_now = size;
        if let Some(len) = size {
            let buffered = self.handles.buffer(ino).is_some()
                || fh
                    .and_then(|f| self.handles.get(f))
                    .is_some_and(|h| h.write);
            if buffered {
                self.ensure_buffer(ino, fh)?;
                if let Some(b) = self.handles.buffer_mut(ino) {
                    b.set_len(len).map_err(|e| io_fail("truncate", e))?;
                    b.dirty = true;
                    b.changed_ns = now_ns();
                    b.writer = Some(Opener::of_pid(caller.pid));
                }
                size_now = None;
            }
        }
        if let (Some(t), Some(b)) = (mtime_ns, self.handles.buffer_mut(ino)) {
            b.mtime_ns = Some(t);
        }
        let Some(path) = self.inodes.path(ino).cloned() else {
            return self.getattr(ino);
        };
        if mode.is_some()
            || uid.is_some()
            || gid.is_some()
            || size_now.is_some()
            || mtime_ns.is_some()
        {
            let mut ops = Vec::new();
            if let Some(m) = mode {
                ops.push(format!("chmod {:o}", m & 0o7777));
            }
            if uid.is_some() || gid.is_some() {
                ops.push(format!(
                    "chown {}:{}",
                    uid.map(|u| u.to_string()).unwrap_or_default(),
                    gid.map(|g| g.to_string()).unwrap_or_default()
                ));
            }
            if let Some(s) = size_now {
                ops.push(format!("truncate {s}"));
            }
            if mtime_ns.is_some() {
                ops.push("utimens".to_string());
            }
            let cmd = command(&ops.join(", "), path.as_str(), &caller.who());
            let p = path.clone();
            self.commit(caller, &cmd, |tx| {
                if let Some(len) = size_now {
                    tx.truncate(&p, len)?;
                }
                if uid.is_some() || gid.is_some() {
                    // The kernel itself asks to clear set-ID bits (as a
                    // mode change in the same request) when POSIX wants it.
                    let m = *tx
                        .entry(&p)?
                        .meta()
                        .ok_or_else(|| EngineError::NotFound(p.to_string()))?;
                    tx.chown(&p, uid.unwrap_or(m.uid), gid.unwrap_or(m.gid))?;
                }
                if let Some(m) = mode {
                    tx.chmod(&p, m)?;
                }
                if let Some(t) = mtime_ns {
                    tx.set_mtime(&p, t)?;
                }
                Ok(())
            })
            .map_err(|e| fail("setattr", path.as_str(), e))?;
            self.cursors.remove(&ino);
        }
        self.attr_of_path(ino, &path)
    }

    /// FUSE readlink.
    pub fn readlink(&mut self, ino: u64) -> FsResult<Vec<u8>> {
        let path = self.path_of(ino)?;
        match self.view(|tx| tx.entry(&path)) {
            Ok(Entry::Symlink { target, .. }) => Ok(target.into_bytes()),
            Ok(_) => Err(libc::EINVAL),
            Err(e) => Err(fail("readlink", path.as_str(), e)),
        }
    }

    /// Owner group and extra mode bits for a new entry in `parent`: a
    /// set-group-ID directory passes on its group (and, to directories,
    /// the bit itself).
    fn inherit(tx: &mut Txn<'_>, path: &VPath, gid: u32) -> dbos_engine::Result<(u32, bool)> {
        let parent = path.parent().unwrap_or_else(VPath::root);
        match tx.entry(&parent)? {
            Entry::Dir { meta } if meta.mode & 0o2000 != 0 => Ok((meta.gid, true)),
            _ => Ok((gid, false)),
        }
    }

    /// The parent's modification time moves when its entries change.
    fn touch_parent(tx: &mut Txn<'_>, path: &VPath) -> dbos_engine::Result<()> {
        if let Some(parent) = path.parent() {
            tx.set_mtime(&parent, now_ns())?;
        }
        Ok(())
    }

    /// Create a regular file (create, mknod): one transaction.
    fn create_file(&mut self, caller: &Caller, path: &VPath, mode: u32) -> FsResult<()> {
        let cmd = command("create", path.as_str(), &caller.who());
        let (uid, gid) = (caller.uid, caller.gid);
        self.commit(caller, &cmd, |tx| {
            if tx.stat(path)?.is_some() {
                return Err(EngineError::AlreadyExists(path.to_string()));
            }
            let (g, _) = Self::inherit(tx, path, gid)?;
            tx.write_file(path, std::io::empty(), false)?;
            if g != gid {
                tx.chown(path, uid, g)?;
            }
            tx.chmod(path, mode & 0o7777)?;
            Self::touch_parent(tx, path)
        })
        .map_err(|e| fail("create", path.as_str(), e))
    }

    /// FUSE mknod: regular files only (the engine stores no devices,
    /// FIFOs or sockets: EPERM).
    pub fn mknod(
        &mut self,
        caller: &Caller,
        parent: u64,
        name: &OsStr,
        mode: u32,
        umask: u32,
    ) -> FsResult<FileAttr> {
        self.check_writable()?;
        if mode & libc::S_IFMT != libc::S_IFREG && mode & libc::S_IFMT != 0 {
            return Err(libc::EPERM);
        }
        let path = self.child(parent, name)?;
        self.create_file(caller, &path, mode & !umask)?;
        self.lookup(parent, name)
    }

    /// FUSE mkdir: one transaction.
    pub fn mkdir(
        &mut self,
        caller: &Caller,
        parent: u64,
        name: &OsStr,
        mode: u32,
        umask: u32,
    ) -> FsResult<FileAttr> {
        self.check_writable()?;
        let path = self.child(parent, name)?;
        let cmd = command("mkdir", path.as_str(), &caller.who());
        let (uid, gid) = (caller.uid, caller.gid);
        let mode = mode & !umask & 0o7777;
        self.commit(caller, &cmd, |tx| {
            let (g, sgid) = Self::inherit(tx, &path, gid)?;
            tx.mkdir(&path, false, if sgid { mode | 0o2000 } else { mode })?;
            if g != gid {
                tx.chown(&path, uid, g)?;
            }
            Self::touch_parent(tx, &path)
        })
        .map_err(|e| fail("mkdir", path.as_str(), e))?;
        self.lookup(parent, name)
    }

    /// FUSE unlink: one transaction. An open file stays readable.
    pub fn unlink(&mut self, caller: &Caller, parent: u64, name: &OsStr) -> FsResult<()> {
        self.check_writable()?;
        let path = self.child(parent, name)?;
        let cmd = command("unlink", path.as_str(), &caller.who());
        self.commit(caller, &cmd, |tx| {
            if tx.entry(&path)?.is_dir() {
                return Err(EngineError::IsADirectory(path.to_string()));
            }
            tx.remove(&path, false)?;
            Self::touch_parent(tx, &path)
        })
        .map_err(|e| fail("unlink", path.as_str(), e))?;
        self.inodes.remove_tree(&path);
        Ok(())
    }

    /// FUSE rmdir: one transaction.
    pub fn rmdir(&mut self, caller: &Caller, parent: u64, name: &OsStr) -> FsResult<()> {
        self.check_writable()?;
        let path = self.child(parent, name)?;
        let cmd = command("rmdir", path.as_str(), &caller.who());
        self.commit(caller, &cmd, |tx| {
            tx.rmdir(&path)?;
            Self::touch_parent(tx, &path)
        })
        .map_err(|e| fail("rmdir", path.as_str(), e))?;
        self.inodes.remove_tree(&path);
        Ok(())
    }

    /// FUSE symlink: one transaction.
    pub fn symlink(
        &mut self,
        caller: &Caller,
        parent: u64,
        name: &OsStr,
        target: &Path,
    ) -> FsResult<FileAttr> {
        self.check_writable()?;
        let path = self.child(parent, name)?;
        let target = target.to_str().ok_or(libc::EINVAL)?.to_string();
        let cmd = command("symlink", &format!("{path} -> {target}"), &caller.who());
        let (uid, gid) = (caller.uid, caller.gid);
        self.commit(caller, &cmd, |tx| {
            let (g, _) = Self::inherit(tx, &path, gid)?;
            tx.symlink(&target, &path)?;
            if g != gid {
                tx.chown(&path, uid, g)?;
            }
            Self::touch_parent(tx, &path)
        })
        .map_err(|e| fail("symlink", path.as_str(), e))?;
        self.lookup(parent, name)
    }

    /// FUSE rename: one transaction; replaces a file or an empty directory
    /// as rename(2) does. RENAME_NOREPLACE is honoured; RENAME_EXCHANGE is
    /// not supported (EINVAL).
    pub fn rename(
        &mut self,
        caller: &Caller,
        parent: u64,
        name: &OsStr,
        newparent: u64,
        newname: &OsStr,
        flags: u32,
    ) -> FsResult<()> {
        self.check_writable()?;
        if flags & libc::RENAME_EXCHANGE != 0 || flags & libc::RENAME_WHITEOUT != 0 {
            return Err(libc::EINVAL);
        }
        let noreplace = flags & libc::RENAME_NOREPLACE != 0;
        let from = self.child(parent, name)?;
        let to = self.child(newparent, newname)?;
        let cmd = command("rename", &format!("{from} -> {to}"), &caller.who());
        self.commit(caller, &cmd, |tx| {
            if noreplace && tx.stat(&to)?.is_some() {
                return Err(EngineError::AlreadyExists(to.to_string()));
            }
            tx.rename(&from, &to)?;
            if from != to {
                Self::touch_parent(tx, &from)?;
                if to.parent() != from.parent() {
                    Self::touch_parent(tx, &to)?;
                }
            }
            Ok(())
        })
        .map_err(|e| fail("rename", from.as_str(), e))?;
        self.inodes.rename(&from, &to);
        Ok(())
    }

    /// FUSE open: a handle remembering the opener's pid and command line.
    /// O_TRUNC starts an empty buffer (committed at close).
    pub fn open(&mut self, caller: &Caller, ino: u64, flags: i32) -> FsResult<u64> {
        let acc = flags & libc::O_ACCMODE;
        let write = acc == libc::O_WRONLY || acc == libc::O_RDWR;
        if write || flags & libc::O_TRUNC != 0 {
            self.check_writable()?;
        }
        let path = self.path_of(ino)?;
        let entry = match self.view(|tx| tx.entry(&path)) {
            Ok(e @ Entry::File { .. }) => e,
            Ok(Entry::Dir { .. }) => return Err(libc::EISDIR),
            Ok(_) => return Err(libc::EINVAL),
            Err(e) => return Err(fail("open", path.as_str(), e)),
        };
        let opener = Opener::of_pid(caller.pid);
        let fh = self.handles.open(Handle {
            ino,
            write,
            append: flags & libc::O_APPEND != 0,
            opener: opener.clone(),
            entry: Some(entry),
        });
        if write && flags & libc::O_TRUNC != 0 {
            // Truncating changes the file only if it had content.
            let now = now_ns();
            let had_content = match self.handles.buffer(ino) {
                Some(b) => b.size > 0,
                None => {
                    self.handles
                        .get(fh)
                        .and_then(|h| h.entry.as_ref())
                        .map(Entry::size)
                        != Some(0)
                }
            };
            if had_content {
                if self.handles.buffer(ino).is_none() {
                    match Buffer::empty(now) {
                        Ok(b) => self.handles.set_buffer(ino, b),
                        Err(e) => {
                            self.handles.close(fh);
                            return Err(io_fail("temporary file", e));
                        }
                    }
                }
                if let Some(b) = self.handles.buffer_mut(ino) {
                    b.set_len(0).map_err(|e| io_fail("truncate", e))?;
                    b.dirty = true;
                    b.changed_ns = now;
                    b.writer = Some(opener);
                }
            }
        }
        Ok(fh)
    }

    /// FUSE create: the empty file is committed at once (one transaction),
    /// then opened.
    pub fn create(
        &mut self,
        caller: &Caller,
        parent: u64,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
    ) -> FsResult<(FileAttr, u64)> {
        self.check_writable()?;
        let path = self.child(parent, name)?;
        match self.create_file(caller, &path, mode & !umask) {
            Ok(()) => {}
            Err(libc::EEXIST) if flags & libc::O_EXCL == 0 => {}
            Err(e) => return Err(e),
        }
        let attr = self.lookup(parent, name)?;
        let fh = self.open(caller, attr.ino.0, flags & !libc::O_CREAT)?;
        Ok((attr, fh))
    }

    /// FUSE read: from the inode's buffer if it has one, else from the
    /// committed content (or, once unlinked, the content seen at open).
    pub fn read(&mut self, fh: u64, offset: u64, size: u32) -> FsResult<Vec<u8>> {
        let h = self.handles.get(fh).ok_or(libc::EBADF)?;
        let ino = h.ino;
        let at_open = h.entry.clone();
        if let Some(b) = self.handles.buffer(ino) {
            return b
                .read_at(offset, size as usize)
                .map_err(|e| io_fail("read", e));
        }
        let content = match self.inodes.path(ino).cloned() {
            Some(p) => match self.view(|tx| tx.stat(&p)) {
                Ok(Some(Entry::File { content, .. })) => Some(content),
                Ok(_) => None,
                Err(e) => return Err(fail("read", p.as_str(), e)),
            },
            None => None,
        };
        let content = match content.or(match at_open {
            Some(Entry::File { content, .. }) => Some(content),
            _ => None,
        }) {
            Some(c) => c,
            None => return Ok(Vec::new()),
        };
        let mut cursor = match self.cursors.remove(&ino) {
            Some(c) if c.digest == content.digest => c,
            _ => ChunkCursor::new(&content),
        };
        let out = self.view(|tx| cursor.read_at(offset, size as usize, |c| tx.read_chunk(c)));
        self.cursors.insert(ino, cursor);
        out.map_err(|e| fail("read", "content", e))
    }

    /// FUSE write: into the inode's buffer (made on the first write).
    pub fn write(&mut self, fh: u64, offset: u64, data: &[u8]) -> FsResult<u32> {
        self.check_writable()?;
        let h = self.handles.get(fh).ok_or(libc::EBADF)?;
        if !h.write {
            return Err(libc::EBADF);
        }
        let (ino, append, opener) = (h.ino, h.append, h.opener.clone());
        self.ensure_buffer(ino, Some(fh))?;
        let b = self.handles.buffer_mut(ino).ok_or(libc::EIO)?;
        let at = if append { b.size } else { offset };
        b.write_at(at, data).map_err(|e| io_fail("write", e))?;
        b.dirty = true;
        b.changed_ns = now_ns();
        // A write after utimens moves the modification time again.
        b.mtime_ns = None;
        b.writer = Some(opener);
        Ok(data.len().min(u32::MAX as usize) as u32)
    }

    /// FUSE fallocate, mode 0 only (posix_fallocate): the file grows to
    /// at least `offset + len` bytes (zeros), like a write; committed at
    /// close. Other modes (punching holes, ...) are not supported.
    pub fn fallocate(&mut self, fh: u64, offset: u64, len: u64, mode: i32) -> FsResult<()> {
        self.check_writable()?;
        if mode != 0 {
            return Err(libc::EOPNOTSUPP);
        }
        let h = self.handles.get(fh).ok_or(libc::EBADF)?;
        if !h.write {
            return Err(libc::EBADF);
        }
        let (ino, opener) = (h.ino, h.opener.clone());
        let end = offset.checked_add(len).ok_or(libc::EFBIG)?;
        self.ensure_buffer(ino, Some(fh))?;
        let b = self.handles.buffer_mut(ino).ok_or(libc::EIO)?;
        if end > b.size {
            b.set_len(end).map_err(|e| io_fail("fallocate", e))?;
            b.dirty = true;
            b.changed_ns = now_ns();
            b.writer = Some(opener);
        }
        Ok(())
    }

    /// Commit the inode's buffer if it changed: the data rule (flush,
    /// fsync, release, shutdown). A file unlinked meanwhile commits nothing.
    pub fn commit_buffer(&mut self, ino: u64) -> FsResult<()> {
        let Some(b) = self.handles.buffer(ino) else {
            return Ok(());
        };
        if !b.dirty {
            return Ok(());
        }
        let Some(path) = self.inodes.path(ino).cloned() else {
            if let Some(b) = self.handles.buffer_mut(ino) {
                b.dirty = false;
            }
            return Ok(());
        };
        let who = b
            .writer
            .as_ref()
            .map(Opener::describe)
            .unwrap_or_else(|| "the kernel".to_string());
        let cmd = command("write", path.as_str(), &who);
        let Core {
            engine,
            committer,
            handles,
            owner,
            ..
        } = self;
        let Some(b) = handles.buffer(ino) else {
            return Ok(());
        };
        let res = committer.run(engine, owner.0, owner.1, &cmd, |tx| {
            // Removed meanwhile by another writer: the open file is like an
            // unlinked one, and its data is not resurrected under the path.
            match tx.stat(&path)? {
                Some(Entry::File { .. }) => {}
                Some(_) | None => return Ok(()),
            }
            tx.write_file(&path, b.reader(), false)?;
            // The modification time is that of the last write (or the one
            // set explicitly while open), not of the close.
            tx.set_mtime(&path, b.mtime_ns.unwrap_or(b.changed_ns))
        });
        match res {
            Ok(_) => {
                if let Some(b) = self.handles.buffer_mut(ino) {
                    b.dirty = false;
                }
                self.cursors.remove(&ino);
                Ok(())
            }
            Err(e) => {
                eprintln!("dbos mount: committing {path}: {e}");
                Err(errno_of(&e))
            }
        }
    }

    /// FUSE flush and fsync: commit the file's changes.
    pub fn flush(&mut self, fh: u64) -> FsResult<()> {
        let ino = self.handles.get(fh).ok_or(libc::EBADF)?.ino;
        self.commit_buffer(ino)
    }

    /// FUSE release: commit what is left, close; the last close drops the
    /// buffer.
    pub fn release(&mut self, fh: u64) -> FsResult<()> {
        let Some(ino) = self.handles.get(fh).map(|h| h.ino) else {
            return Ok(());
        };
        let res = self.commit_buffer(ino);
        if let Some((_, last)) = self.handles.close(fh) {
            if last {
                self.handles.drop_buffer(ino);
            }
        }
        res
    }

    /// FUSE opendir: the listing, taken now and served by readdir.
    pub fn opendir(&mut self, ino: u64) -> FsResult<u64> {
        let path = self.path_of(ino)?;
        let kids = self
            .view(|tx| tx.read_dir(&path))
            .map_err(|e| fail("opendir", path.as_str(), e))?;
        let parent_ino = match path.parent() {
            Some(p) => self.inodes.ino_of(&p),
            None => ROOT_INO,
        };
        let mut listing: Listing = Vec::with_capacity(kids.len() + 2);
        listing.push((ino, FileType::Directory, ".".to_string()));
        listing.push((parent_ino, FileType::Directory, "..".to_string()));
        for (name, e) in kids {
            let Ok(p) = path.join(&name) else { continue };
            listing.push((self.inodes.ino_of(&p), kind_of(&e), name));
        }
        Ok(self.handles.open_dir(listing))
    }

    /// The listing of an open directory from `offset` on.
    pub fn listing(&self, fh: u64, offset: u64) -> FsResult<Listing> {
        let l = self.handles.dir(fh).ok_or(libc::EBADF)?;
        Ok(l.iter().skip(offset as usize).cloned().collect())
    }

    /// FUSE releasedir.
    pub fn releasedir(&mut self, fh: u64) {
        self.handles.close_dir(fh);
    }

    /// Commit every file with pending changes and refuse writes from now
    /// on (Ctrl-C, SIGTERM, unmount). The number committed.
    pub fn shutdown(&mut self) -> usize {
        self.closing = true;
        let mut n = 0;
        for ino in self.handles.dirty() {
            if self.commit_buffer(ino).is_ok() {
                n += 1;
            }
        }
        n
    }
}

/// The `fuser::Filesystem`: forwards each request to the [`Core`] on the
/// engine thread.
pub struct DbosFs {
    worker: Arc<Worker<Core>>,
    read_only: bool,
}

impl DbosFs {
    /// A filesystem over the engine thread `worker`.
    pub fn new(worker: Arc<Worker<Core>>, read_only: bool) -> DbosFs {
        DbosFs { worker, read_only }
    }

    fn ask<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Core) -> FsResult<R> + Send + 'static,
    ) -> Result<R, Errno> {
        match self.worker.call(f) {
            Some(Ok(r)) => Ok(r),
            Some(Err(e)) => Err(Errno::from_i32(e)),
            None => Err(Errno::EIO),
        }
    }
}

fn reply_entry(reply: ReplyEntry, r: Result<FileAttr, Errno>) {
    match r {
        Ok(a) => reply.entry(&TTL, &a, Generation(0)),
        Err(e) => reply.error(e),
    }
}

fn reply_attr(reply: ReplyAttr, r: Result<FileAttr, Errno>) {
    match r {
        Ok(a) => reply.attr(&TTL, &a),
        Err(e) => reply.error(e),
    }
}

fn reply_empty(reply: ReplyEmpty, r: Result<(), Errno>) {
    match r {
        Ok(()) => reply.ok(),
        Err(e) => reply.error(e),
    }
}

impl Filesystem for DbosFs {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        // open(O_TRUNC) arrives as one open with the flag, not as a
        // separate truncate: one transaction per rewrite, not two.
        let _ = config.add_capabilities(fuser::InitFlags::FUSE_ATOMIC_O_TRUNC);
        Ok(())
    }

    fn destroy(&mut self) {
        let _ = self.worker.call(|c| c.shutdown());
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let name = name.to_os_string();
        reply_entry(reply, self.ask(move |c| c.lookup(parent.0, &name)));
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        let _ = self.worker.call(move |c| c.forget(ino.0, nlookup));
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        reply_attr(reply, self.ask(move |c| c.getattr(ino.0)));
    }

    fn setattr(
        &self,
        req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        _atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let caller = Caller::of(req);
        let fh = fh.map(|f| f.0);
        reply_attr(
            reply,
            self.ask(move |c| c.setattr(&caller, ino.0, mode, uid, gid, size, mtime, fh)),
        );
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        match self.ask(move |c| c.readlink(ino.0)) {
            Ok(t) => reply.data(&t),
            Err(e) => reply.error(e),
        }
    }

    fn mknod(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        _rdev: u32,
        reply: ReplyEntry,
    ) {
        if self.read_only {
            return reply.error(Errno::EROFS);
        }
        let caller = Caller::of(req);
        let name = name.to_os_string();
        reply_entry(
            reply,
            self.ask(move |c| c.mknod(&caller, parent.0, &name, mode, umask)),
        );
    }

    fn mkdir(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        let caller = Caller::of(req);
        let name = name.to_os_string();
        reply_entry(
            reply,
            self.ask(move |c| c.mkdir(&caller, parent.0, &name, mode, umask)),
        );
    }

    fn unlink(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let caller = Caller::of(req);
        let name = name.to_os_string();
        reply_empty(reply, self.ask(move |c| c.unlink(&caller, parent.0, &name)));
    }

    fn rmdir(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let caller = Caller::of(req);
        let name = name.to_os_string();
        reply_empty(reply, self.ask(move |c| c.rmdir(&caller, parent.0, &name)));
    }

    fn symlink(
        &self,
        req: &Request,
        parent: INodeNo,
        link_name: &OsStr,
        target: &Path,
        reply: ReplyEntry,
    ) {
        let caller = Caller::of(req);
        let name = link_name.to_os_string();
        let target = target.to_path_buf();
        reply_entry(
            reply,
            self.ask(move |c| c.symlink(&caller, parent.0, &name, &target)),
        );
    }

    fn rename(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        let caller = Caller::of(req);
        let name: OsString = name.to_os_string();
        let newname: OsString = newname.to_os_string();
        let flags = flags.bits();
        reply_empty(
            reply,
            self.ask(move |c| c.rename(&caller, parent.0, &name, newparent.0, &newname, flags)),
        );
    }

    fn link(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _newparent: INodeNo,
        _newname: &OsStr,
        reply: ReplyEntry,
    ) {
        // The engine has no hard links: one path, one entry.
        reply.error(if self.read_only {
            Errno::EROFS
        } else {
            Errno::EPERM
        });
    }

    fn open(&self, req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let caller = Caller::of(req);
        match self.ask(move |c| c.open(&caller, ino.0, flags.0)) {
            Ok(fh) => reply.opened(FileHandle(fh), FopenFlags::empty()),
            Err(e) => reply.error(e),
        }
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        match self.ask(move |c| c.read(fh.0, offset, size)) {
            Ok(d) => reply.data(&d),
            Err(e) => reply.error(e),
        }
    }

    fn write(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let data = data.to_vec();
        match self.ask(move |c| c.write(fh.0, offset, &data)) {
            Ok(n) => reply.written(n),
            Err(e) => reply.error(e),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        reply_empty(reply, self.ask(move |c| c.flush(fh.0)));
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        reply_empty(reply, self.ask(move |c| c.release(fh.0)));
    }

    fn fsync(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        reply_empty(reply, self.ask(move |c| c.flush(fh.0)));
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        match self.ask(move |c| c.opendir(ino.0)) {
            Ok(fh) => reply.opened(FileHandle(fh), FopenFlags::empty()),
            Err(e) => reply.error(e),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        match self.ask(move |c| c.listing(fh.0, offset)) {
            Ok(entries) => {
                for (i, (ino, kind, name)) in entries.into_iter().enumerate() {
                    if reply.add(INodeNo(ino), offset + i as u64 + 1, kind, name) {
                        break;
                    }
                }
                reply.ok();
            }
            Err(e) => reply.error(e),
        }
    }

    fn releasedir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        let _ = self.worker.call(move |c| c.releasedir(fh.0));
        reply.ok();
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        // Directory changes are committed when they happen.
        reply.ok();
    }

    fn fallocate(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        reply_empty(
            reply,
            self.ask(move |c| c.fallocate(fh.0, offset, length, mode)),
        );
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        // Space is the database's; report a large, mostly free volume.
        let blocks = 1u64 << 32;
        reply.statfs(
            blocks,
            blocks / 2,
            blocks / 2,
            1 << 32,
            1 << 31,
            4096,
            255,
            4096,
        );
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let caller = Caller::of(req);
        let name = name.to_os_string();
        match self.ask(move |c| c.create(&caller, parent.0, &name, mode, umask, flags)) {
            Ok((attr, fh)) => reply.created(
                &TTL,
                &attr,
                Generation(0),
                FileHandle(fh),
                FopenFlags::empty(),
            ),
            Err(e) => reply.error(e),
        }
    }
}
