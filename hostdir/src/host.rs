//! Directory handles on the host filesystem. Everything below a handle is
//! reached through the `*at` system calls with one checked name at a time
//! and `O_NOFOLLOW`/`AT_SYMLINK_NOFOLLOW`: no symbolic link is ever followed
//! here. Only [`HostDir::open`], given the top directory by the user, resolves
//! a path the ordinary way.

use std::ffi::{CStr, CString, OsStr, OsString};
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

/// The kind of a host filesystem entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum HostKind {
    Dir,
    File,
    Symlink,
    Fifo,
    Socket,
    CharDevice,
    BlockDevice,
    Unknown,
}

impl HostKind {
    fn from_mode(mode: libc::mode_t) -> HostKind {
        match mode & libc::S_IFMT {
            libc::S_IFDIR => HostKind::Dir,
            libc::S_IFREG => HostKind::File,
            libc::S_IFLNK => HostKind::Symlink,
            libc::S_IFIFO => HostKind::Fifo,
            libc::S_IFSOCK => HostKind::Socket,
            libc::S_IFCHR => HostKind::CharDevice,
            libc::S_IFBLK => HostKind::BlockDevice,
            _ => HostKind::Unknown,
        }
    }
}

/// What `lstat` says about an entry, reduced to what the tree keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Stat {
    pub kind: HostKind,
    /// Permission bits, setuid, setgid and sticky included (`0o7777`).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    /// Modification time in nanoseconds since the epoch (saturating).
    pub mtime_ns: i64,
}

impl Stat {
    // The field types differ between platforms (32-bit `time_t`, 16-bit
    // `mode_t`): the conversions are needed there, not here.
    #[allow(clippy::useless_conversion)]
    fn from_raw(st: &libc::stat) -> Stat {
        let secs = i64::from(st.st_mtime);
        let nanos = i64::from(st.st_mtime_nsec);
        Stat {
            kind: HostKind::from_mode(st.st_mode),
            mode: u32::from(st.st_mode) & 0o7777,
            uid: st.st_uid,
            gid: st.st_gid,
            size: u64::try_from(st.st_size).unwrap_or(0),
            mtime_ns: secs.saturating_mul(1_000_000_000).saturating_add(nanos),
        }
    }
}

fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// A name usable with the `*at` calls: one component, never `.`, `..`, empty,
/// or containing `/` or NUL.
pub(crate) fn checked_name(name: &OsStr) -> io::Result<CString> {
    let b = name.as_bytes();
    if b.is_empty() || b == b"." || b == b".." || b.contains(&b'/') || b.contains(&0) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("refusing unsafe name {name:?}"),
        ));
    }
    CString::new(b).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))
}

fn timespec(ns: i64) -> libc::timespec {
    libc::timespec {
        tv_sec: ns.div_euclid(1_000_000_000) as _,
        tv_nsec: ns.rem_euclid(1_000_000_000) as _,
    }
}

/// Times for `utimensat`/`futimens`: access time left alone, modification
/// time set.
fn mtime_times(mtime_ns: i64) -> [libc::timespec; 2] {
    [
        libc::timespec {
            tv_sec: 0,
            tv_nsec: libc::UTIME_OMIT,
        },
        timespec(mtime_ns),
    ]
}

/// Set a file's or directory's permission bits and modification time (and
/// with `owner`, its owner first: changing owner may clear setuid bits).
pub(crate) fn set_fd_meta(
    fd: RawFd,
    mode: u32,
    mtime_ns: i64,
    owner: Option<(u32, u32)>,
) -> io::Result<()> {
    // SAFETY: `fd` is an open descriptor owned by the caller for the whole
    // call; the timespec array outlives the call.
    unsafe {
        if let Some((uid, gid)) = owner {
            cvt(libc::fchown(fd, uid, gid))?;
        }
        cvt(libc::fchmod(fd, (mode & 0o7777) as libc::mode_t))?;
        cvt(libc::futimens(fd, mtime_times(mtime_ns).as_ptr()))?;
    }
    Ok(())
}

/// An open directory on the host, with the path it was reached by (for
/// messages only: it is never used to reach anything).
pub(crate) struct HostDir {
    fd: OwnedFd,
    path: PathBuf,
}

impl HostDir {
    /// Open the directory a user named. A symbolic link naming a directory
    /// is resolved here, and only here.
    pub(crate) fn open(path: &Path) -> io::Result<HostDir> {
        let c = CString::new(path.as_os_str().as_bytes())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        // SAFETY: `c` is a valid NUL-terminated string for the call.
        let fd = cvt(unsafe {
            libc::open(
                c.as_ptr(),
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
            )
        })?;
        Ok(HostDir {
            // SAFETY: `fd` was just returned by open and is owned by nobody else.
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
            path: path.to_path_buf(),
        })
    }

    /// The path this directory was reached by.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The path of an entry of this directory, for messages.
    pub(crate) fn child_path(&self, name: &OsStr) -> PathBuf {
        self.path.join(name)
    }

    /// The raw descriptor (valid while `self` lives).
    pub(crate) fn raw(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    fn open_at(&self, name: &OsStr, flags: libc::c_int, mode: libc::mode_t) -> io::Result<OwnedFd> {
        let c = checked_name(name)?;
        // SAFETY: valid descriptor and NUL-terminated name for the call.
        let fd = cvt(unsafe {
            libc::openat(
                self.raw(),
                c.as_ptr(),
                flags | libc::O_NOFOLLOW | libc::O_CLOEXEC,
                libc::c_uint::from(mode),
            )
        })?;
        // SAFETY: `fd` was just returned by openat and is owned by nobody else.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    }

    /// Open a subdirectory; fails (ELOOP/ENOTDIR) on a symbolic link or
    /// anything that is not a directory.
    pub(crate) fn open_dir(&self, name: &OsStr) -> io::Result<HostDir> {
        let fd = self.open_at(name, libc::O_RDONLY | libc::O_DIRECTORY, 0)?;
        Ok(HostDir {
            fd,
            path: self.child_path(name),
        })
    }

    /// Open a descendant directory by its names below this one, one
    /// component at a time, following no symbolic link.
    pub(crate) fn open_descendant<S: AsRef<OsStr>>(&self, names: &[S]) -> io::Result<HostDir> {
        let Some((first, rest)) = names.split_first() else {
            return self.try_clone();
        };
        let mut dir = self.open_dir(first.as_ref())?;
        for n in rest {
            dir = dir.open_dir(n.as_ref())?;
        }
        Ok(dir)
    }

    fn try_clone(&self) -> io::Result<HostDir> {
        Ok(HostDir {
            fd: self.fd.try_clone()?,
            path: self.path.clone(),
        })
    }

    /// `fstat` of this directory.
    pub(crate) fn stat_self(&self) -> io::Result<Stat> {
        // SAFETY: an all-zero `stat` is a valid value; fstat fills it.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: valid descriptor and pointer to a `stat` for the call.
        cvt(unsafe { libc::fstat(self.raw(), &mut st) })?;
        Ok(Stat::from_raw(&st))
    }

    /// `lstat` of an entry (a symbolic link is described, not followed).
    pub(crate) fn lstat(&self, name: &OsStr) -> io::Result<Stat> {
        let c = checked_name(name)?;
        // SAFETY: an all-zero `stat` is a valid value; fstatat fills it.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: valid descriptor, name and pointer for the call.
        cvt(unsafe { libc::fstatat(self.raw(), c.as_ptr(), &mut st, libc::AT_SYMLINK_NOFOLLOW) })?;
        Ok(Stat::from_raw(&st))
    }

    /// The names in this directory (without `.` and `..`), sorted by bytes.
    pub(crate) fn list(&self) -> io::Result<Vec<OsString>> {
        // SAFETY: duplicating a valid descriptor; the copy is handed to
        // fdopendir, which owns it from then on (closedir closes it).
        let dup = cvt(unsafe { libc::fcntl(self.raw(), libc::F_DUPFD_CLOEXEC, 0) })?;
        // SAFETY: `dup` is a valid directory descriptor we own.
        let dirp = unsafe { libc::fdopendir(dup) };
        if dirp.is_null() {
            let e = io::Error::last_os_error();
            // SAFETY: fdopendir failed, so `dup` is still ours to close.
            unsafe { libc::close(dup) };
            return Err(e);
        }
        // The duplicate shares the read position: start from the beginning.
        // SAFETY: `dirp` is a valid open directory stream until closedir.
        unsafe { libc::rewinddir(dirp) };
        let mut names = Vec::new();
        let result = loop {
            clear_errno();
            // SAFETY: `dirp` is valid; the entry is read before the next call.
            let ent = unsafe { libc::readdir(dirp) };
            if ent.is_null() {
                let e = io::Error::last_os_error();
                break match e.raw_os_error() {
                    Some(0) | None => Ok(()),
                    Some(_) => Err(e),
                };
            }
            // SAFETY: d_name is a NUL-terminated name inside the entry.
            let name = unsafe { CStr::from_ptr((*ent).d_name.as_ptr()) }.to_bytes();
            if name != b"." && name != b".." {
                names.push(OsString::from_vec(name.to_vec()));
            }
        };
        // SAFETY: `dirp` is valid and not used after this.
        unsafe { libc::closedir(dirp) };
        result?;
        names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        Ok(names)
    }

    /// The target text of a symbolic link.
    pub(crate) fn read_link(&self, name: &OsStr) -> io::Result<OsString> {
        let c = checked_name(name)?;
        let mut buf: Vec<u8> = vec![0; 256];
        loop {
            // SAFETY: valid descriptor and name; `buf` has `buf.len()` bytes.
            let n = unsafe {
                libc::readlinkat(
                    self.raw(),
                    c.as_ptr(),
                    buf.as_mut_ptr().cast::<libc::c_char>(),
                    buf.len(),
                )
            };
            if n < 0 {
                return Err(io::Error::last_os_error());
            }
            let n = n as usize;
            if n < buf.len() {
                buf.truncate(n);
                return Ok(OsString::from_vec(buf));
            }
            if buf.len() > 1 << 20 {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "symbolic link target too long",
                ));
            }
            let len = buf.len() * 2;
            buf.resize(len, 0);
        }
    }

    /// Open a regular file for reading. Refuses a symbolic link, and never
    /// blocks on a FIFO or device put in its place.
    pub(crate) fn open_file(&self, name: &OsStr) -> io::Result<File> {
        let fd = self.open_at(name, libc::O_RDONLY | libc::O_NONBLOCK | libc::O_NOCTTY, 0)?;
        let file = File::from(fd);
        if !file.metadata()?.is_file() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "no longer a regular file",
            ));
        }
        Ok(file)
    }

    /// Create a new regular file (mode 0600 until its final mode is set);
    /// fails if anything, a symbolic link included, already has the name.
    pub(crate) fn create_file(&self, name: &OsStr) -> io::Result<File> {
        let fd = self.open_at(
            name,
            libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOCTTY,
            0o600,
        )?;
        Ok(File::from(fd))
    }

    /// Create a subdirectory.
    pub(crate) fn make_dir(&self, name: &OsStr, mode: u32) -> io::Result<()> {
        let c = checked_name(name)?;
        // SAFETY: valid descriptor and name for the call.
        cvt(unsafe { libc::mkdirat(self.raw(), c.as_ptr(), mode as libc::mode_t) })?;
        Ok(())
    }

    /// Create a symbolic link holding `target` (stored as is, never resolved).
    pub(crate) fn make_symlink(&self, target: &OsStr, name: &OsStr) -> io::Result<()> {
        let c = checked_name(name)?;
        let t = CString::new(target.as_bytes())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        // SAFETY: valid strings and descriptor for the call.
        cvt(unsafe { libc::symlinkat(t.as_ptr(), self.raw(), c.as_ptr()) })?;
        Ok(())
    }

    /// Set an entry's owner and modification time without following it when
    /// it is a symbolic link (whose permission bits Linux does not keep).
    pub(crate) fn set_link_meta(
        &self,
        name: &OsStr,
        mtime_ns: i64,
        owner: Option<(u32, u32)>,
    ) -> io::Result<()> {
        let c = checked_name(name)?;
        // SAFETY: valid descriptor, name and timespec array for the calls.
        unsafe {
            if let Some((uid, gid)) = owner {
                cvt(libc::fchownat(
                    self.raw(),
                    c.as_ptr(),
                    uid,
                    gid,
                    libc::AT_SYMLINK_NOFOLLOW,
                ))?;
            }
            cvt(libc::utimensat(
                self.raw(),
                c.as_ptr(),
                mtime_times(mtime_ns).as_ptr(),
                libc::AT_SYMLINK_NOFOLLOW,
            ))?;
        }
        Ok(())
    }

    /// Remove an entry; a directory with everything in it. Symbolic links
    /// are removed, never followed.
    pub(crate) fn remove(&self, name: &OsStr) -> io::Result<()> {
        let c = checked_name(name)?;
        if self.lstat(name)?.kind == HostKind::Dir {
            let sub = self.open_dir(name)?;
            for n in sub.list()? {
                sub.remove(&n)?;
            }
            // SAFETY: valid descriptor and name for the call.
            cvt(unsafe { libc::unlinkat(self.raw(), c.as_ptr(), libc::AT_REMOVEDIR) })?;
        } else {
            // SAFETY: valid descriptor and name for the call.
            cvt(unsafe { libc::unlinkat(self.raw(), c.as_ptr(), 0) })?;
        }
        Ok(())
    }
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn clear_errno() {
    // SAFETY: the thread's errno location is always valid to write.
    unsafe { *libc::__errno_location() = 0 };
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn clear_errno() {
    // SAFETY: the thread's errno location is always valid to write.
    unsafe { *libc::__error() = 0 };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_single_names_are_accepted() {
        for bad in ["", ".", "..", "a/b", "/", "../x", "a\0b"] {
            assert!(checked_name(OsStr::new(bad)).is_err(), "{bad:?}");
        }
        for good in ["a", "...", "a b", "new\nline", "\u{1}"] {
            assert!(checked_name(OsStr::new(good)).is_ok(), "{good:?}");
        }
    }

    #[test]
    fn nothing_is_created_through_a_symbolic_link() {
        let tmp = tempfile::tempdir().unwrap();
        let outside = tmp.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        let top = tmp.path().join("top");
        std::fs::create_dir(&top).unwrap();
        std::os::unix::fs::symlink(&outside, top.join("link")).unwrap();
        std::os::unix::fs::symlink(outside.join("f"), top.join("flink")).unwrap();
        let dir = HostDir::open(&top).unwrap();
        assert!(dir.open_dir(OsStr::new("link")).is_err());
        assert!(dir.create_file(OsStr::new("flink")).is_err());
        assert!(dir.make_dir(OsStr::new("link"), 0o700).is_err());
        assert!(dir.open_file(OsStr::new("flink")).is_err());
        dir.remove(OsStr::new("link")).unwrap();
        assert!(outside.exists());
        assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0);
    }
}
