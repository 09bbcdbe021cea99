//! Faults of the machine under the database (issue 11): a full disk in the
//! middle of a large transaction, a read-only filesystem, permission
//! denied, and a database held locked by another process. Each must give
//! one clear line naming the database and what was wrong, a non-zero exit
//! status, and lose nothing committed; after the fault is removed the same
//! command works.
//!
//! The disk-full and read-only tests mount a small tmpfs, which needs root:
//! without it (or when the mount fails) they say SKIPPED on standard error
//! and pass. CI runs as root.

use assert_cmd::Command;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A tmpfs mounted on a fresh folder, unmounted when dropped.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// Mount a tmpfs of `size` (mount's syntax: `8m`); None (with a loud
    /// SKIPPED line) when that is not possible here.
    fn mount(test: &str, size: &str) -> Option<Tmpfs> {
        // SAFETY: geteuid has no preconditions and cannot fail.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("SKIPPED {test}: mounting a tmpfs needs root");
            return None;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let ok = std::process::Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0755"),
                "tmpfs",
            ])
            .arg(dir.path())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            eprintln!("SKIPPED {test}: mount -t tmpfs failed (no CAP_SYS_ADMIN?)");
            return None;
        }
        Some(Tmpfs { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn remount(&self, opt: &str) {
        let ok = std::process::Command::new("mount")
            .args(["-o", &format!("remount,{opt}")])
            .arg(self.path())
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "remount {opt}");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let done = std::process::Command::new("umount")
            .arg(self.path())
            .status()
            .is_ok_and(|s| s.success());
        if !done {
            let _ = std::process::Command::new("umount")
                .arg("-l")
                .arg(self.path())
                .status();
        }
    }
}

struct Out {
    code: i32,
    out: String,
    err: String,
}

fn dbos_in(db: &Path, home: &Path, lock_timeout: &str, args: &[&str]) -> Out {
    let o = Command::cargo_bin("dbos")
        .expect("dbos binary")
        .env("HOME", home)
        .env("USER", "tester")
        .env("DBOS_LOCK_TIMEOUT", lock_timeout)
        .env_remove("DBOS_DB")
        .arg("--db")
        .arg(db)
        .args(args)
        .timeout(Duration::from_secs(300))
        .output()
        .expect("run dbos");
    let out = Out {
        code: o.status.code().unwrap_or(-1),
        out: String::from_utf8_lossy(&o.stdout).into_owned(),
        err: String::from_utf8_lossy(&o.stderr).into_owned(),
    };
    assert!(
        out.code != 101 && !out.err.contains("panicked"),
        "{args:?} panicked: {}",
        out.err
    );
    out
}

fn dbos(db: &Path, home: &Path, args: &[&str]) -> Out {
    dbos_in(db, home, "2", args)
}

fn ok(db: &Path, home: &Path, args: &[&str]) -> String {
    let o = dbos(db, home, args);
    assert_eq!(o.code, 0, "{args:?}: {}", o.err);
    o.out
}

/// Everything committed, as the reads show it: the log, the tree, the
/// notes file's history and the hash chain's head.
fn committed(db: &Path, home: &Path) -> String {
    let verify = ok(db, home, &["verify"]);
    let head = verify.rsplit("head hash ").next().unwrap_or_default();
    format!(
        "{}{}{}{head}",
        ok(db, home, &["-c", "log"]),
        ok(db, home, &["-c", "tree /"]),
        ok(db, home, &["-c", "history /notes"]),
    )
}

/// A database with a little history.
fn seed(db: &Path, home: &Path) {
    for i in 0..3 {
        ok(
            db,
            home,
            &["-c", &format!("echo note {i} >> /notes; mkdir -p /d{i}")],
        );
    }
}

/// The one error line of a failed run; checks it names the database.
fn one_error_line(o: &Out, db: &Path) -> String {
    assert_ne!(o.code, 0, "expected a failure: {}", o.out);
    let lines: Vec<&str> = o.err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one error line, got: {}", o.err);
    assert!(
        lines[0].contains(&db.display().to_string()),
        "the error names the database: {}",
        lines[0]
    );
    lines[0].to_string()
}

/// Files of incompressible content, `count` of `size` bytes each.
fn host_tree(dir: &Path, count: usize, size: usize) {
    std::fs::create_dir_all(dir).expect("mkdir");
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    for i in 0..count {
        let bytes: Vec<u8> = (0..size)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect();
        std::fs::write(dir.join(format!("f{i}")), bytes).expect("write host file");
    }
}

/// A filler file taking `bytes` of the filesystem.
fn fill(path: &Path, bytes: usize) {
    std::fs::write(path, vec![0x5au8; bytes]).expect("write filler");
}

#[test]
fn disk_full_during_an_import_then_the_same_import_works() {
    let Some(fs) = Tmpfs::mount("disk_full_during_an_import", "24m") else {
        return;
    };
    let home = tempfile::tempdir().expect("home");
    let db = fs.path().join("state.db");
    seed(&db, home.path());
    let before = committed(&db, home.path());
    let host = home.path().join("tree");
    host_tree(&host, 60, 100_000);
    let filler = fs.path().join("filler");
    // What is left is far less than the ~6 MB the import stores.
    let used = 2 << 20;
    fill(&filler, 24 * (1 << 20) - used - (2 << 20));
    let host_arg = host.display().to_string();
    let full = dbos(&db, home.path(), &["import", &host_arg, "/h"]);
    let line = one_error_line(&full, &db);
    assert!(line.contains("no space left on device"), "{line}");
    assert_eq!(
        committed(&db, home.path()),
        before,
        "nothing committed lost"
    );
    let doc = dbos(&db, home.path(), &["doctor"]);
    assert_eq!(doc.code, 0, "{}{}", doc.out, doc.err);

    std::fs::remove_file(&filler).expect("free space");
    ok(&db, home.path(), &["import", &host_arg, "/h"]);
    let after = committed(&db, home.path());
    assert_ne!(after, before);
    assert!(after.contains("f59"), "the import is there: {after}");
    assert_eq!(
        ok(&db, home.path(), &["-c", "wc -c /h/f7"])
            .split_whitespace()
            .next(),
        Some("100000")
    );
}

#[test]
fn disk_full_during_a_large_multi_file_transaction_then_it_works() {
    let Some(fs) = Tmpfs::mount("disk_full_during_a_large_transaction", "16m") else {
        return;
    };
    let home = tempfile::tempdir().expect("home");
    let db = fs.path().join("state.db");
    seed(&db, home.path());
    let before = committed(&db, home.path());
    // begin; 400 files of 16 KiB of incompressible text; commit.
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut script = String::from("begin\n");
    for i in 0..400 {
        let text: String = (0..2048)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                format!("{:08x}", state as u32)
            })
            .collect();
        script.push_str(&format!("echo {text} > /big{i}\n"));
    }
    script.push_str("commit\n");
    let script_file = home.path().join("big.dbos");
    std::fs::write(&script_file, script).expect("write script");
    let filler = fs.path().join("filler");
    fill(&filler, 12 << 20);
    let script_arg = script_file.display().to_string();
    let full = dbos(&db, home.path(), &[&script_arg]);
    let line = one_error_line(&full, &db);
    assert!(line.contains("no space left on device"), "{line}");
    assert_eq!(
        committed(&db, home.path()),
        before,
        "nothing committed lost"
    );

    std::fs::remove_file(&filler).expect("free space");
    ok(&db, home.path(), &[&script_arg]);
    assert_eq!(
        ok(&db, home.path(), &["-c", "ls / | wc -l"]).trim(),
        (400 + 3 + 1).to_string()
    );
}

#[test]
fn read_only_filesystem_reads_work_and_writes_say_why() {
    let Some(fs) = Tmpfs::mount("read_only_filesystem", "8m") else {
        return;
    };
    let home = tempfile::tempdir().expect("home");
    let db = fs.path().join("state.db");
    seed(&db, home.path());
    let before = committed(&db, home.path());
    fs.remount("ro");
    assert_eq!(
        ok(&db, home.path(), &["-c", "cat /notes"]),
        "note 0\nnote 1\nnote 2\n"
    );
    assert_eq!(committed(&db, home.path()), before);
    let w = dbos(&db, home.path(), &["-c", "echo more >> /notes"]);
    let line = one_error_line(&w, &db);
    assert!(line.contains("read-only"), "{line}");
    assert_eq!(w.code, 1);
    fs.remount("rw");
    ok(&db, home.path(), &["-c", "echo more >> /notes"]);
    assert_eq!(ok(&db, home.path(), &["-c", "tail -n 1 /notes"]), "more\n");
}

#[test]
fn permission_denied_names_the_database() {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("SKIPPED permission_denied: root is needed to run dbos as another user");
        return;
    }
    let home = tempfile::tempdir().expect("home");
    let db = home.path().join("private").join("state.db");
    seed(&db, home.path());
    let before = committed(&db, home.path());
    // The database folder is 0700 and the file 0600, both root's: user
    // nobody may neither read nor write it.
    let bin: PathBuf = assert_cmd::cargo::cargo_bin("dbos");
    for script in ["cat /notes", "echo x > /x"] {
        let o = {
            use std::os::unix::process::CommandExt;
            std::process::Command::new(&bin)
                .env("HOME", "/tmp")
                .env("USER", "nobody")
                .arg("--db")
                .arg(&db)
                .args(["-c", script])
                .uid(65534)
                .gid(65534)
                .output()
                .expect("run dbos as nobody")
        };
        let out = Out {
            code: o.status.code().unwrap_or(-1),
            out: String::from_utf8_lossy(&o.stdout).into_owned(),
            err: String::from_utf8_lossy(&o.stderr).into_owned(),
        };
        let line = one_error_line(&out, &db);
        assert!(line.contains("Permission denied"), "{line}");
        assert_eq!(out.code, 1, "{line}");
    }
    assert_eq!(committed(&db, home.path()), before);
}

#[test]
fn a_lock_held_past_the_timeout_is_reported_and_changes_nothing() {
    let home = tempfile::tempdir().expect("home");
    let db = home.path().join("state.db");
    seed(&db, home.path());
    let before = committed(&db, home.path());
    let holder = rusqlite::Connection::open(&db).expect("open with sqlite");
    holder
        .execute_batch("BEGIN EXCLUSIVE; INSERT INTO tags(name, branch_id, tx_id) SELECT 'held', 1, 1 WHERE 0;")
        .expect("take the write lock");
    let started = Instant::now();
    let o = dbos_in(&db, home.path(), "1", &["-c", "echo x >> /notes"]);
    let waited = started.elapsed();
    let line = one_error_line(&o, &db);
    assert!(
        line.contains("is locked by another process (waited 1 s)"),
        "{line}"
    );
    assert_eq!(o.code, 1);
    assert!(waited >= Duration::from_secs(1), "waited {waited:?}");
    assert!(
        waited < Duration::from_secs(20),
        "the lock timeout is not waited out again and again: {waited:?}"
    );
    // Reads do not wait for the writer.
    assert_eq!(
        dbos_in(&db, home.path(), "1", &["-c", "cat /notes"]).out,
        "note 0\nnote 1\nnote 2\n"
    );
    holder.execute_batch("ROLLBACK").expect("release");
    drop(holder);
    assert_eq!(committed(&db, home.path()), before);
    ok(&db, home.path(), &["-c", "echo x >> /notes"]);
}
