//! Import of hostile host trees: names with newlines, names that are not
//! UTF-8, a 4,096-byte path, 100,000 entries in one directory (with
//! `DBOS_TEST_HUGE_DIR=1`: 122 s for import + export, 4 min in all, in a
//! debug build; 2,000 otherwise), symbolic link
//! loops and links out of the tree. Each import must succeed or fail with a
//! clear report, never panic, never read through a link, and the export of
//! what was imported must write nothing outside its directory.

use dbos_engine::{Actor, Engine, VPath};
use dbos_hostdir::{export, import, ExportOptions, ImportOptions, NoProgress, SkipReason};
use std::ffi::{CString, OsStr};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

struct Fixture {
    _tmp: tempfile::TempDir,
    engine: Engine,
    src: PathBuf,
    out: PathBuf,
    outside: PathBuf,
}

fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().expect("temp dir");
    let engine = Engine::open(&tmp.path().join("t.db").display().to_string()).expect("engine");
    let src = tmp.path().join("src");
    let outside = tmp.path().join("outside");
    std::fs::create_dir(&src).expect("mkdir");
    std::fs::create_dir(&outside).expect("mkdir");
    std::fs::write(outside.join("secret"), b"do not read").expect("write");
    Fixture {
        out: tmp.path().join("out"),
        _tmp: tmp,
        engine,
        src,
        outside,
    }
}

impl Fixture {
    /// Import `src` into /t and commit, then export /t into `out`.
    fn round_trip(&mut self) -> dbos_hostdir::ImportReport {
        let (src, out) = (self.src.clone(), self.out.clone());
        let dest = VPath::parse("/t").expect("path");
        let (report, _) = self
            .engine
            .autocommit("main", &Actor::default(), "import", |tx| {
                Ok(import(
                    tx,
                    &src,
                    &dest,
                    &ImportOptions::default(),
                    &mut NoProgress,
                ))
            })
            .expect("commit");
        let report = report.expect("import");
        let mut tx = self.engine.begin("main", &Actor::default()).expect("begin");
        export(
            &mut tx,
            &dest,
            &out,
            &ExportOptions::default(),
            &mut NoProgress,
        )
        .expect("export");
        // Nothing outside changed.
        let names: Vec<_> = std::fs::read_dir(&self.outside)
            .expect("list")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, vec![OsStr::new("secret").to_owned()]);
        assert_eq!(
            std::fs::read(self.outside.join("secret")).expect("read"),
            b"do not read"
        );
        report
    }

    fn read_tree(&mut self, path: &str) -> Vec<u8> {
        let mut tx = self.engine.begin("main", &Actor::default()).expect("begin");
        tx.read_file(&VPath::parse(path).expect("path"))
            .expect("read")
    }
}

#[test]
fn names_with_newlines_and_controls_round_trip() {
    let mut f = fixture();
    for n in [
        "a\nb",
        "\n",
        "tab\there",
        "esc\u{1b}[31m",
        " lead",
        "trail ",
    ] {
        std::fs::write(f.src.join(n), n.as_bytes()).expect("write");
    }
    std::fs::create_dir(f.src.join("dir\nwith newline")).expect("mkdir");
    std::fs::write(f.src.join("dir\nwith newline/x"), b"x").expect("write");
    let report = f.round_trip();
    assert!(report.skipped.is_empty(), "{:?}", report.skipped);
    assert_eq!(report.added, 9, "{report:?}");
    assert_eq!(f.read_tree("/t/a\nb"), b"a\nb");
    assert_eq!(std::fs::read(f.out.join("\n")).expect("read"), b"\n");
    assert_eq!(
        std::fs::read(f.out.join("dir\nwith newline/x")).expect("read"),
        b"x"
    );
}

#[test]
fn names_not_utf8_are_skipped_and_reported() {
    let mut f = fixture();
    let bad = OsStr::from_bytes(b"bad\xff\xfename");
    std::fs::write(f.src.join(bad), b"content").expect("write");
    std::fs::create_dir(f.src.join(OsStr::from_bytes(b"dir\x80"))).expect("mkdir");
    std::fs::write(f.src.join("good"), b"ok").expect("write");
    symlink(OsStr::from_bytes(b"target\xff"), f.src.join("badlink")).expect("symlink");
    let report = f.round_trip();
    let mut reasons: Vec<(PathBuf, SkipReason)> = report
        .skipped
        .iter()
        .map(|s| (s.host_path.clone(), s.reason.clone()))
        .collect();
    reasons.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(reasons.len(), 3, "{reasons:?}");
    assert!(reasons.contains(&(f.src.join(bad), SkipReason::NameNotUtf8)));
    assert!(reasons.contains(&(
        f.src.join(OsStr::from_bytes(b"dir\x80")),
        SkipReason::NameNotUtf8
    )));
    assert!(matches!(
        reasons.iter().find(|r| r.0 == f.src.join("badlink")),
        Some((_, SkipReason::BadTarget(_)))
    ));
    // The report prints each on one line, bytes escaped.
    for s in &report.skipped {
        assert!(!s.to_string().contains('\n'), "{s}");
    }
    assert_eq!(f.read_tree("/t/good"), b"ok");
    let exported: Vec<_> = std::fs::read_dir(&f.out)
        .expect("list")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(exported, vec![OsStr::new("good").to_owned()]);
}

/// mkdir + open through file descriptors: the host path is too long for
/// path-based calls.
fn nest(root: &Path, name: &str, levels: usize) {
    let c_root = CString::new(root.as_os_str().as_bytes()).expect("cstring");
    let c_name = CString::new(name).expect("cstring");
    // SAFETY: plain system calls on valid NUL-terminated strings; every
    // descriptor opened here is closed.
    unsafe {
        let mut fd = libc::open(c_root.as_ptr(), libc::O_DIRECTORY | libc::O_RDONLY);
        assert!(fd >= 0);
        for _ in 0..levels {
            assert_eq!(libc::mkdirat(fd, c_name.as_ptr(), 0o755), 0);
            let next = libc::openat(fd, c_name.as_ptr(), libc::O_DIRECTORY | libc::O_RDONLY);
            assert!(next >= 0);
            libc::close(fd);
            fd = next;
        }
        let file = CString::new("leaf").expect("cstring");
        let f = libc::openat(fd, file.as_ptr(), libc::O_CREAT | libc::O_WRONLY, 0o644);
        assert!(f >= 0);
        libc::close(f);
        libc::close(fd);
    }
}

#[test]
fn a_4096_byte_path_is_imported_up_to_the_limit_and_the_rest_reported() {
    let mut f = fixture();
    // /t/ + 20 x (199-byte name + '/') = 4,003 bytes; one more level
    // passes 4,096.
    let name = "n".repeat(199);
    nest(&f.src, &name, 21);
    let report = f.round_trip();
    assert_eq!(report.skipped.len(), 1, "{:?}", report.skipped);
    let s = &report.skipped[0];
    assert!(matches!(s.reason, SkipReason::BadPath(_)), "{s}");
    assert!(s.host_path.as_os_str().len() > 4096);
    // The 20 levels that fit are in the tree.
    let deepest = format!("/t/{}", vec![name.as_str(); 20].join("/"));
    assert!(deepest.len() <= 4096);
    let mut tx = f.engine.begin("main", &Actor::default()).expect("begin");
    assert!(tx
        .stat(&VPath::parse(&deepest).expect("path"))
        .expect("stat")
        .is_some());
}

#[test]
fn symlink_loops_and_escapes_are_kept_as_links() {
    let mut f = fixture();
    symlink("self", f.src.join("self")).expect("symlink");
    symlink("b", f.src.join("a")).expect("symlink");
    symlink("a", f.src.join("b")).expect("symlink");
    symlink(".", f.src.join("dot")).expect("symlink");
    symlink("..", f.src.join("up")).expect("symlink");
    symlink("../outside/secret", f.src.join("escape")).expect("symlink");
    symlink(&f.outside, f.src.join("abs")).expect("symlink");
    std::fs::create_dir(f.src.join("d")).expect("mkdir");
    symlink("../d", f.src.join("d/loop")).expect("symlink");
    let report = f.round_trip();
    assert!(report.skipped.is_empty(), "{:?}", report.skipped);
    assert_eq!(report.added, 10, "{report:?}");
    for (name, target) in [
        ("self", "self"),
        ("a", "b"),
        ("b", "a"),
        ("dot", "."),
        ("up", ".."),
        ("escape", "../outside/secret"),
        ("d/loop", "../d"),
    ] {
        assert_eq!(
            std::fs::read_link(f.out.join(name)).expect("readlink"),
            Path::new(target)
        );
    }
    assert_eq!(
        std::fs::read_link(f.out.join("abs")).expect("readlink"),
        f.outside
    );
    // The secret's content never entered the tree.
    let mut tx = f.engine.begin("main", &Actor::default()).expect("begin");
    let all = tx.walk(&VPath::parse("/t").expect("path")).expect("walk");
    assert_eq!(all.len(), 10, "the links and /t/d, with /t");
}

#[test]
fn a_directory_of_100000_entries() {
    let n: usize = match std::env::var("DBOS_TEST_HUGE_DIR") {
        Ok(_) => 100_000,
        Err(_) => 2_000,
    };
    let mut f = fixture();
    let big = f.src.join("big");
    std::fs::create_dir(&big).expect("mkdir");
    for i in 0..n {
        std::fs::write(big.join(format!("f{i}")), i.to_string()).expect("write");
    }
    let started = std::time::Instant::now();
    let report = f.round_trip();
    eprintln!("{n} entries: import + export in {:?}", started.elapsed());
    assert!(report.skipped.is_empty());
    assert_eq!(report.added as usize, n + 2);
    assert_eq!(
        std::fs::read_dir(f.out.join("big")).expect("list").count(),
        n
    );
    let probe = n * 3 / 4 + 1;
    assert_eq!(
        std::fs::read(f.out.join(format!("big/f{probe}"))).expect("read"),
        probe.to_string().as_bytes()
    );
}
