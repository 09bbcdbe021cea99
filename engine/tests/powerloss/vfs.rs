//! A recording SQLite VFS: the default `unix` VFS, plus an in-memory log of
//! every `xWrite`, `xTruncate`, `xSync` and `xDelete` on the files that
//! outlive a power cut (the main database, its `-wal` and its rollback
//! `-journal`), in the order SQLite issued them.
//!
//! Not recorded, on purpose: the `-shm` wal-index (written through `mmap`,
//! never through `xWrite`; the first connection after a reboot takes the
//! exclusive DMS lock and rebuilds it from the WAL, so its content after a
//! power cut does not matter), and temporary/sub-journal files (gone after a
//! restart). Directory entries are not modelled: a file that has never been
//! synced reads as empty or missing, which SQLite treats alike for every
//! file but the main database, and the main database is synced before any
//! crash point we use.
//!
//! The wrapper changes no behaviour: every call goes to the real `unix`
//! VFS, which does the I/O (so the workload runs on a real database), and
//! the log holds a copy of the bytes written.

use rusqlite::ffi;
use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::sync::atomic::{AtomicPtr, Ordering};
use std::sync::{Mutex, Once};

/// The name the VFS is registered under.
pub const NAME: &str = "dbos-powerloss";

/// One recorded operation on a file (files are numbered in `Log::files`).
#[derive(Clone, Debug)]
pub enum Op {
    /// `pwrite(data)` at `offset`.
    Write { offset: u64, data: Vec<u8> },
    /// `ftruncate` to this size.
    Truncate(u64),
    /// `fsync`: everything before it on this file is durable.
    Sync,
    /// `unlink`; with `dir_synced` the directory was fsynced after it, so
    /// the removal is durable at once (SQLite asks for that only for a
    /// rollback journal with `synchronous=EXTRA`).
    Delete { dir_synced: bool },
}

/// Everything recorded so far, in issue order.
#[derive(Default)]
pub struct Log {
    /// Full path of each recorded file, indexed by file number.
    pub files: Vec<String>,
    /// (file number, operation), in the order SQLite issued them.
    pub ops: Vec<(usize, Op)>,
}

impl Log {
    fn file_no(&mut self, path: &str) -> usize {
        match self.files.iter().position(|p| p == path) {
            Some(i) => i,
            None => {
                self.files.push(path.to_string());
                self.files.len() - 1
            }
        }
    }
}

static LOG: Mutex<Log> = Mutex::new(Log {
    files: Vec::new(),
    ops: Vec::new(),
});

fn record(file: usize, op: Op) {
    LOG.lock().expect("recorder lock").ops.push((file, op));
}

/// How many operations have been recorded (a position in the log).
pub fn position() -> usize {
    LOG.lock().expect("recorder lock").ops.len()
}

/// Take the log recorded so far, leaving an empty one.
pub fn take() -> Log {
    std::mem::take(&mut *LOG.lock().expect("recorder lock"))
}

/// The real `unix` VFS we delegate to.
static REAL: AtomicPtr<ffi::sqlite3_vfs> = AtomicPtr::new(std::ptr::null_mut());

/// Our file handle. SQLite allocates `szOsFile` bytes for it; the real
/// VFS's own handle lives right after this header in the same allocation.
#[repr(C)]
struct RecFile {
    /// Must come first: SQLite sees a `sqlite3_file` whose methods are ours.
    base: ffi::sqlite3_file,
    /// The real handle (points just past this struct).
    inner: *mut ffi::sqlite3_file,
    /// Index in `Log::files`, or `None` for a file we do not record.
    file: Option<usize>,
}

/// Size of our header, rounded to 8 so the real handle stays aligned.
const HEADER: usize = std::mem::size_of::<RecFile>().next_multiple_of(8);

/// Register the VFS (once per process); not the default VFS.
pub fn register() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: sqlite3_vfs_find and sqlite3_vfs_register are thread-safe;
        // the copied struct and its name are leaked, so they outlive every
        // connection, as SQLite requires.
        unsafe {
            let real = ffi::sqlite3_vfs_find(c"unix".as_ptr());
            assert!(!real.is_null(), "no unix VFS");
            REAL.store(real, Ordering::SeqCst);
            // Start from the real VFS so that every method we do not
            // override (access, full pathname, randomness, time...) is the
            // real one; none of those uses `pAppData` or `szOsFile`.
            let mut vfs: ffi::sqlite3_vfs = std::ptr::read(real);
            vfs.szOsFile = (HEADER + (*real).szOsFile as usize) as c_int;
            vfs.pNext = std::ptr::null_mut();
            vfs.zName = CString::new(NAME).expect("name").into_raw();
            vfs.xOpen = Some(x_open);
            vfs.xDelete = Some(x_delete);
            let rc = ffi::sqlite3_vfs_register(Box::into_raw(Box::new(vfs)), 0);
            assert_eq!(rc, ffi::SQLITE_OK, "register VFS");
        }
    });
}

fn real_vfs() -> *mut ffi::sqlite3_vfs {
    REAL.load(Ordering::SeqCst)
}

/// The path SQLite passed, or `None` for an anonymous temporary file.
///
/// SAFETY: `name` is null or a NUL-terminated string from SQLite.
unsafe fn path_of(name: *const c_char) -> Option<String> {
    (!name.is_null()).then(|| CStr::from_ptr(name).to_string_lossy().into_owned())
}

unsafe extern "C" fn x_open(
    _vfs: *mut ffi::sqlite3_vfs,
    name: *const c_char,
    file: *mut ffi::sqlite3_file,
    flags: c_int,
    out_flags: *mut c_int,
) -> c_int {
    // SAFETY: `file` points to `szOsFile` bytes (header + real handle).
    let rec = file as *mut RecFile;
    let inner = (file as *mut u8).add(HEADER) as *mut ffi::sqlite3_file;
    let real = real_vfs();
    // The real xOpen gets the real VFS (unix reads its `pAppData`).
    let rc = ((*real).xOpen.expect("xOpen"))(real, name, inner, flags, out_flags);
    let durable = ffi::SQLITE_OPEN_MAIN_DB | ffi::SQLITE_OPEN_MAIN_JOURNAL | ffi::SQLITE_OPEN_WAL;
    let file_no = match path_of(name) {
        Some(p) if flags & durable != 0 => Some(LOG.lock().expect("recorder lock").file_no(&p)),
        _ => None,
    };
    rec.write(RecFile {
        // A failed open leaves no methods: SQLite then never calls xClose.
        base: ffi::sqlite3_file {
            pMethods: if (*inner).pMethods.is_null() {
                std::ptr::null()
            } else {
                &METHODS
            },
        },
        inner,
        file: file_no,
    });
    rc
}

unsafe extern "C" fn x_delete(
    _vfs: *mut ffi::sqlite3_vfs,
    name: *const c_char,
    sync_dir: c_int,
) -> c_int {
    let real = real_vfs();
    let rc = ((*real).xDelete.expect("xDelete"))(real, name, sync_dir);
    if rc == ffi::SQLITE_OK {
        if let Some(p) = path_of(name) {
            let mut log = LOG.lock().expect("recorder lock");
            if let Some(i) = log.files.iter().position(|f| *f == p) {
                log.ops.push((
                    i,
                    Op::Delete {
                        dir_synced: sync_dir != 0,
                    },
                ));
            }
        }
    }
    rc
}

/// The real handle and its methods.
///
/// SAFETY: `f` is a handle opened by `x_open` with methods set.
unsafe fn real(
    f: *mut ffi::sqlite3_file,
) -> (*mut ffi::sqlite3_file, &'static ffi::sqlite3_io_methods) {
    let inner = (*(f as *mut RecFile)).inner;
    (inner, &*(*inner).pMethods)
}

unsafe fn recorded(f: *mut ffi::sqlite3_file) -> Option<usize> {
    (*(f as *mut RecFile)).file
}

unsafe extern "C" fn x_close(f: *mut ffi::sqlite3_file) -> c_int {
    let (i, m) = real(f);
    (m.xClose.expect("xClose"))(i)
}

unsafe extern "C" fn x_read(
    f: *mut ffi::sqlite3_file,
    buf: *mut c_void,
    n: c_int,
    off: i64,
) -> c_int {
    let (i, m) = real(f);
    (m.xRead.expect("xRead"))(i, buf, n, off)
}

unsafe extern "C" fn x_write(
    f: *mut ffi::sqlite3_file,
    buf: *const c_void,
    n: c_int,
    off: i64,
) -> c_int {
    let (i, m) = real(f);
    let rc = (m.xWrite.expect("xWrite"))(i, buf, n, off);
    if let (Some(file), ffi::SQLITE_OK) = (recorded(f), rc) {
        // SAFETY: SQLite passes `n` readable bytes at `buf`.
        let data = std::slice::from_raw_parts(buf as *const u8, n as usize).to_vec();
        record(
            file,
            Op::Write {
                offset: off as u64,
                data,
            },
        );
    }
    rc
}

unsafe extern "C" fn x_truncate(f: *mut ffi::sqlite3_file, size: i64) -> c_int {
    let (i, m) = real(f);
    let rc = (m.xTruncate.expect("xTruncate"))(i, size);
    if let (Some(file), ffi::SQLITE_OK) = (recorded(f), rc) {
        record(file, Op::Truncate(size as u64));
    }
    rc
}

unsafe extern "C" fn x_sync(f: *mut ffi::sqlite3_file, flags: c_int) -> c_int {
    let (i, m) = real(f);
    let rc = (m.xSync.expect("xSync"))(i, flags);
    if let (Some(file), ffi::SQLITE_OK) = (recorded(f), rc) {
        record(file, Op::Sync);
    }
    rc
}

unsafe extern "C" fn x_file_size(f: *mut ffi::sqlite3_file, size: *mut i64) -> c_int {
    let (i, m) = real(f);
    (m.xFileSize.expect("xFileSize"))(i, size)
}

unsafe extern "C" fn x_lock(f: *mut ffi::sqlite3_file, level: c_int) -> c_int {
    let (i, m) = real(f);
    (m.xLock.expect("xLock"))(i, level)
}

unsafe extern "C" fn x_unlock(f: *mut ffi::sqlite3_file, level: c_int) -> c_int {
    let (i, m) = real(f);
    (m.xUnlock.expect("xUnlock"))(i, level)
}

unsafe extern "C" fn x_check_reserved_lock(f: *mut ffi::sqlite3_file, out: *mut c_int) -> c_int {
    let (i, m) = real(f);
    (m.xCheckReservedLock.expect("xCheckReservedLock"))(i, out)
}

unsafe extern "C" fn x_file_control(
    f: *mut ffi::sqlite3_file,
    op: c_int,
    arg: *mut c_void,
) -> c_int {
    let (i, m) = real(f);
    (m.xFileControl.expect("xFileControl"))(i, op, arg)
}

unsafe extern "C" fn x_sector_size(f: *mut ffi::sqlite3_file) -> c_int {
    let (i, m) = real(f);
    (m.xSectorSize.expect("xSectorSize"))(i)
}

unsafe extern "C" fn x_device_characteristics(f: *mut ffi::sqlite3_file) -> c_int {
    let (i, m) = real(f);
    (m.xDeviceCharacteristics.expect("xDeviceCharacteristics"))(i)
}

unsafe extern "C" fn x_shm_map(
    f: *mut ffi::sqlite3_file,
    page: c_int,
    size: c_int,
    extend: c_int,
    out: *mut *mut c_void,
) -> c_int {
    let (i, m) = real(f);
    (m.xShmMap.expect("xShmMap"))(i, page, size, extend, out)
}

unsafe extern "C" fn x_shm_lock(
    f: *mut ffi::sqlite3_file,
    off: c_int,
    n: c_int,
    flags: c_int,
) -> c_int {
    let (i, m) = real(f);
    (m.xShmLock.expect("xShmLock"))(i, off, n, flags)
}

unsafe extern "C" fn x_shm_barrier(f: *mut ffi::sqlite3_file) {
    let (i, m) = real(f);
    (m.xShmBarrier.expect("xShmBarrier"))(i)
}

unsafe extern "C" fn x_shm_unmap(f: *mut ffi::sqlite3_file, delete: c_int) -> c_int {
    let (i, m) = real(f);
    (m.xShmUnmap.expect("xShmUnmap"))(i, delete)
}

/// Version 2: the shared-memory methods (needed for WAL) but no
/// `xFetch`/`xUnfetch`, so SQLite never reads through `mmap` either.
static METHODS: ffi::sqlite3_io_methods = ffi::sqlite3_io_methods {
    iVersion: 2,
    xClose: Some(x_close),
    xRead: Some(x_read),
    xWrite: Some(x_write),
    xTruncate: Some(x_truncate),
    xSync: Some(x_sync),
    xFileSize: Some(x_file_size),
    xLock: Some(x_lock),
    xUnlock: Some(x_unlock),
    xCheckReservedLock: Some(x_check_reserved_lock),
    xFileControl: Some(x_file_control),
    xSectorSize: Some(x_sector_size),
    xDeviceCharacteristics: Some(x_device_characteristics),
    xShmMap: Some(x_shm_map),
    xShmLock: Some(x_shm_lock),
    xShmBarrier: Some(x_shm_barrier),
    xShmUnmap: Some(x_shm_unmap),
    xFetch: None,
    xUnfetch: None,
};
