//! dbos-mount: the versioned tree as a real filesystem (FUSE).
//!
//! `dbos mount MOUNTPOINT` lets any program read and write the tree of a
//! branch. Metadata changes (create, mkdir, rename, unlink, chmod, ...)
//! commit at once, one transaction each; a file's data commits when it is
//! closed or fsynced. Each transaction names the writing program's pid and
//! command line. A mount of a past moment (`--as-of`) is read-only: every
//! write fails with EROFS and nothing is ever committed. All changes go
//! through the engine API; this crate writes no SQL.
//!
//! [`run`] mounts, waits for SIGINT/SIGTERM (or an external unmount),
//! commits what is pending and unmounts.

#![warn(missing_docs)]

pub mod commit;
pub mod error;
pub mod fs;
pub mod handles;
pub mod inodes;
pub mod worker;

pub use error::MountError;

use commit::Committer;
use dbos_engine::Engine;
use fs::{Core, DbosFs};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use worker::Worker;

/// What to mount and how.
#[derive(Clone, Debug)]
pub struct MountConfig {
    /// Database location (a SQLite path or a PostgreSQL URL).
    pub location: String,
    /// Branch to mount.
    pub branch: String,
    /// A REF (`T12`, `HEAD~3`, a time): mount that moment read-only.
    pub as_of: Option<String>,
    /// Author recorded with the mount's transactions.
    pub author: String,
    /// Let other users use the mount (`allow_other`; needs root or
    /// `user_allow_other` in /etc/fuse.conf).
    pub allow_other: bool,
    /// The mount point (an existing empty directory).
    pub mountpoint: PathBuf,
}

/// Check the mount point and the FUSE prerequisites, naming what is wrong.
pub fn check_prerequisites(cfg: &MountConfig) -> Result<(), MountError> {
    let mp = &cfg.mountpoint;
    let bad = |reason: &str| MountError::MountPoint {
        path: mp.clone(),
        reason: reason.to_string(),
    };
    match std::fs::metadata(mp) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(bad("does not exist (create it with mkdir first)"))
        }
        Err(e) => return Err(bad(&e.to_string())),
        Ok(m) if !m.is_dir() => return Err(bad("is not a directory")),
        Ok(_) => {}
    }
    match std::fs::read_dir(mp) {
        Ok(mut d) => {
            if d.next().is_some() {
                return Err(bad(
                    "is not empty (the mount would hide its files; use an empty directory)",
                ));
            }
        }
        Err(e) => return Err(bad(&e.to_string())),
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    if root {
        // Root mounts with mount(2) and opens the device itself.
        if let Err(e) = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/fuse")
        {
            return Err(MountError::NoFuseDevice(e.to_string()));
        }
    } else {
        // Others go through the setuid helper, which opens the device.
        if !Path::new("/dev/fuse").exists() {
            return Err(MountError::NoFuseDevice("does not exist".to_string()));
        }
        if find_in_path("fusermount3").is_none() {
            return Err(MountError::NoFusermount);
        }
    }
    Ok(())
}

/// The first `name` on `$PATH`.
pub fn find_in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// Block SIGINT, SIGTERM and SIGHUP in this thread and the threads it
/// starts from now on, so `wait_for_signal` can take them.
fn block_signals() -> libc::sigset_t {
    // SAFETY: the set is initialised by sigemptyset before use; the calls
    // only change this thread's signal mask.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGHUP);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    }
}

/// Wait up to `timeout` for one of the blocked signals; its number.
fn wait_for_signal(set: &libc::sigset_t, timeout: Duration) -> Option<i32> {
    let ts = libc::timespec {
        tv_sec: timeout.as_secs() as _,
        tv_nsec: timeout.subsec_nanos() as libc::c_long,
    };
    // SAFETY: `set` is a valid signal set; a null siginfo is allowed.
    let sig = unsafe { libc::sigtimedwait(set, std::ptr::null_mut(), &ts) };
    (sig > 0).then_some(sig)
}

/// Unmount `mp`: plainly, else lazily when busy (a program still holds a
/// file open: it sees errors from now on, but everything it wrote up to
/// now was committed before). Non-root goes through `fusermount3 -u`.
fn unmount(mp: &Path) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(mp.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::other("mount point has a NUL byte"))?;
    // SAFETY: `c` is a valid NUL-terminated path.
    if unsafe { libc::umount2(c.as_ptr(), 0) } == 0 {
        return Ok(());
    }
    let err = std::io::Error::last_os_error();
    match err.raw_os_error() {
        Some(libc::EBUSY) => {
            // SAFETY: as above.
            if unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) } == 0 {
                return Ok(());
            }
            Err(std::io::Error::last_os_error())
        }
        Some(libc::EPERM) => {
            for args in [&["-u"][..], &["-u", "-z"][..]] {
                let ok = std::process::Command::new("fusermount3")
                    .args(args)
                    .arg(mp)
                    .stderr(std::process::Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success());
                if ok {
                    return Ok(());
                }
            }
            Err(err)
        }
        Some(libc::EINVAL) => Ok(()), // not mounted any more
        _ => Err(err),
    }
}

/// Mount, call `ready` with a one-line description once the filesystem
/// is up, and serve it until SIGINT/SIGTERM/SIGHUP or an external unmount;
/// then commit pending writes and unmount. Returns once unmounted.
pub fn run(cfg: &MountConfig, ready: impl FnOnce(&str)) -> Result<(), MountError> {
    check_prerequisites(cfg)?;
    let signals = block_signals();
    let worker_cfg = cfg.clone();
    let started = Worker::start(move || -> Result<(Core, String), MountError> {
        let mut engine = Engine::open(&worker_cfg.location)?;
        engine.branch(&worker_cfg.branch)?;
        let committer = Committer {
            branch: worker_cfg.branch.clone(),
            author: worker_cfg.author.clone(),
        };
        match &worker_cfg.as_of {
            Some(text) => {
                let m = engine.resolve_ref(&worker_cfg.branch, text)?;
                let view = engine.view_at(&m.branch, m.tx)?.into_state();
                let note = format!(" (read-only as of T{})", m.tx);
                Ok((Core::new(engine, committer, Some(view)), note))
            }
            None => Ok((Core::new(engine, committer, None), String::new())),
        }
    })
    .map_err(|e| MountError::Worker(e.to_string()))?;
    let (worker, note) = started?;
    let worker = Arc::new(worker);
    let read_only = cfg.as_of.is_some();
    let fs = DbosFs::new(worker.clone(), read_only);

    let mut options = vec![
        fuser::MountOption::FSName("dbos".to_string()),
        fuser::MountOption::Subtype("dbos".to_string()),
        fuser::MountOption::DefaultPermissions,
    ];
    if read_only {
        options.push(fuser::MountOption::RO);
    }
    let mut config = fuser::Config::default();
    config.mount_options = options;
    config.acl = if cfg.allow_other {
        fuser::SessionACL::All
    } else {
        fuser::SessionACL::Owner
    };
    let session = fuser::spawn_mount(fs, &cfg.mountpoint, &config).map_err(|e| {
        worker.stop();
        MountError::Mount {
            path: cfg.mountpoint.clone(),
            source: e,
        }
    })?;
    let mp = cfg
        .mountpoint
        .canonicalize()
        .unwrap_or_else(|_| cfg.mountpoint.clone());
    ready(&format!("mounted {} at {}{note}", cfg.branch, mp.display()));

    // Serve until a signal, or until someone else unmounts.
    let mut signalled = false;
    while !session.guard.is_finished() {
        if wait_for_signal(&signals, Duration::from_millis(200)).is_some() {
            signalled = true;
            break;
        }
    }
    // Pending data first, then the unmount: nothing written is lost.
    let committed = worker.call(|c| c.shutdown()).unwrap_or(0);
    if committed > 0 {
        eprintln!("dbos mount: committed {committed} open file(s) before unmounting");
    }
    let mut result = Ok(());
    if signalled {
        if let Err(e) = unmount(&mp) {
            result = Err(MountError::Mount {
                path: mp.clone(),
                source: e,
            });
        }
    }
    // The session thread ends once the kernel closes the connection; a
    // lazy unmount with files still open may keep it up: do not wait long.
    let deadline = Instant::now() + Duration::from_secs(3);
    while !session.guard.is_finished() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    if session.guard.is_finished() {
        let _ = session.join();
        worker.stop();
    }
    result
}
