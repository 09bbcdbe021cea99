//! The mount's operations without the kernel: `Core` driven directly, as
//! the FUSE handlers drive it, against a real engine.

use dbos_engine::{Engine, VPath};
use dbos_mount::commit::Committer;
use dbos_mount::fs::{Caller, Core};
use dbos_mount::inodes::ROOT_INO;
use std::ffi::OsStr;

const ME: Caller = Caller {
    uid: 1000,
    gid: 1000,
    pid: 0,
};

fn setup() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("s.db").display().to_string();
    (dir, db)
}

fn core(db: &str) -> Core {
    let engine = Engine::open(db).unwrap();
    Core::new(
        engine,
        Committer {
            branch: "main".into(),
            author: "alice".into(),
        },
        None,
    )
}

fn log(db: &str) -> Vec<String> {
    let mut e = Engine::open(db).unwrap();
    e.log("main", None, 100)
        .unwrap()
        .into_iter()
        .map(|t| t.command)
        .collect()
}

fn cat(db: &str, path: &str) -> Vec<u8> {
    let mut e = Engine::open(db).unwrap();
    let head = e.head().unwrap();
    let mut v = e.view_at("main", head).unwrap();
    v.read_file(&VPath::parse(path).unwrap()).unwrap()
}

#[test]
fn data_commits_at_flush_once_and_metadata_at_once() {
    let (_d, db) = setup();
    let mut c = core(&db);
    let (attr, fh) = c
        .create(
            &ME,
            ROOT_INO,
            OsStr::new("f"),
            0o100640,
            0o022,
            libc::O_WRONLY,
        )
        .unwrap();
    assert_eq!(attr.perm, 0o640);
    assert_eq!(attr.uid, 1000);
    assert_eq!(log(&db).len(), 2, "create is one transaction");
    c.write(fh, 0, b"hello").unwrap();
    c.write(fh, 10, b"!").unwrap();
    assert_eq!(log(&db).len(), 2, "writes wait for the close");
    assert_eq!(c.getattr(attr.ino.0).unwrap().size, 11);
    c.flush(fh).unwrap();
    c.flush(fh).unwrap();
    c.release(fh).unwrap();
    let l = log(&db);
    assert_eq!(l.len(), 3, "{l:?}");
    assert_eq!(l[0], "mount: write /f by the kernel");
    assert_eq!(cat(&db, "/f"), b"hello\0\0\0\0\0!");
    // Reading back through a new handle, at an offset.
    let fh = c.open(&ME, attr.ino.0, libc::O_RDONLY).unwrap();
    assert_eq!(c.read(fh, 3, 4).unwrap(), b"lo\0\0");
    c.release(fh).unwrap();
    // O_TRUNC of content is a change; of an empty file it is none.
    let fh = c
        .open(&ME, attr.ino.0, libc::O_WRONLY | libc::O_TRUNC)
        .unwrap();
    c.release(fh).unwrap();
    assert_eq!(cat(&db, "/f"), b"");
    let n = log(&db).len();
    let fh = c
        .open(&ME, attr.ino.0, libc::O_WRONLY | libc::O_TRUNC)
        .unwrap();
    c.release(fh).unwrap();
    assert_eq!(log(&db).len(), n);
}

#[test]
fn rename_unlink_and_errnos() {
    let (_d, db) = setup();
    let mut c = core(&db);
    let d = c
        .mkdir(&ME, ROOT_INO, OsStr::new("d"), 0o755, 0o022)
        .unwrap();
    let (f, fh) = c
        .create(&ME, d.ino.0, OsStr::new("a"), 0o100644, 0, libc::O_RDWR)
        .unwrap();
    c.write(fh, 0, b"data").unwrap();
    // Renamed while open and dirty: the close commits at the new path.
    c.rename(&ME, d.ino.0, OsStr::new("a"), ROOT_INO, OsStr::new("b"), 0)
        .unwrap();
    c.release(fh).unwrap();
    assert_eq!(cat(&db, "/b"), b"data");
    assert_eq!(c.lookup(ROOT_INO, OsStr::new("b")).unwrap().ino, f.ino);
    assert_eq!(
        c.lookup(d.ino.0, OsStr::new("a")).unwrap_err(),
        libc::ENOENT
    );
    assert_eq!(
        c.mkdir(&ME, ROOT_INO, OsStr::new("d"), 0o755, 0)
            .unwrap_err(),
        libc::EEXIST
    );
    c.create(&ME, d.ino.0, OsStr::new("x"), 0o100644, 0, libc::O_RDONLY)
        .unwrap();
    assert_eq!(
        c.rmdir(&ME, ROOT_INO, OsStr::new("d")).unwrap_err(),
        libc::ENOTEMPTY
    );
    assert_eq!(
        c.unlink(&ME, ROOT_INO, OsStr::new("d")).unwrap_err(),
        libc::EISDIR
    );
    assert_eq!(
        c.rename(
            &ME,
            ROOT_INO,
            OsStr::new("b"),
            ROOT_INO,
            OsStr::new("d"),
            libc::RENAME_NOREPLACE
        )
        .unwrap_err(),
        libc::EEXIST
    );
    let long = "n".repeat(256);
    assert_eq!(
        c.mkdir(&ME, ROOT_INO, OsStr::new(&long), 0o755, 0)
            .unwrap_err(),
        libc::ENAMETOOLONG
    );
    let l = log(&db);
    assert!(
        l.contains(&"mount: rename /d/a -> /b by the kernel".to_string()),
        "{l:?}"
    );
}

#[test]
fn a_past_mount_refuses_every_write() {
    let (_d, db) = setup();
    let mut c = core(&db);
    let (f, fh) = c
        .create(&ME, ROOT_INO, OsStr::new("f"), 0o100644, 0, libc::O_WRONLY)
        .unwrap();
    c.write(fh, 0, b"old").unwrap();
    c.release(fh).unwrap();
    drop(c);
    let mut engine = Engine::open(&db).unwrap();
    let head = engine.head().unwrap();
    let view = engine.view_at("main", head).unwrap().into_state();
    let mut past = Core::new(
        engine,
        Committer {
            branch: "main".into(),
            author: "alice".into(),
        },
        Some(view),
    );
    let a = past.lookup(ROOT_INO, OsStr::new("f")).unwrap();
    assert_eq!(a.size, 3);
    let fh = past.open(&ME, a.ino.0, libc::O_RDONLY).unwrap();
    assert_eq!(past.read(fh, 0, 10).unwrap(), b"old");
    assert_eq!(past.write(fh, 0, b"x").unwrap_err(), libc::EROFS);
    assert_eq!(
        past.open(&ME, a.ino.0, libc::O_WRONLY).unwrap_err(),
        libc::EROFS
    );
    assert_eq!(
        past.mkdir(&ME, ROOT_INO, OsStr::new("d"), 0o755, 0)
            .unwrap_err(),
        libc::EROFS
    );
    assert_eq!(
        past.unlink(&ME, ROOT_INO, OsStr::new("f")).unwrap_err(),
        libc::EROFS
    );
    assert_eq!(
        past.setattr(&ME, a.ino.0, Some(0o600), None, None, None, None, None)
            .unwrap_err(),
        libc::EROFS
    );
    assert_eq!(past.shutdown(), 0);
    let mut e = Engine::open(&db).unwrap();
    assert_eq!(e.head().unwrap(), head, "nothing was committed");
    let _ = f;
}
