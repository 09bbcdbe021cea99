//! Black-box tests of `import` and `export`: real host trees copied into the
//! versioned tree and back out, byte for byte, mode for mode, mtime for
//! mtime and link for link, at every past state; only differences recorded;
//! skips reported; nothing read through or written through a symbolic link;
//! bad input refused with history unchanged.

mod common;

use common::{expect_code, Shell};
use std::collections::BTreeMap;
use std::ffi::{CString, OsStr};
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

// ----- host tree helpers -------------------------------------------------------

/// Set an entry's modification time (nanoseconds) without following links.
fn set_mtime(path: &Path, ns: i64) {
    let c = CString::new(path.as_os_str().as_bytes()).unwrap();
    let times = [
        libc::timespec {
            tv_sec: 0,
            tv_nsec: libc::UTIME_OMIT,
        },
        libc::timespec {
            tv_sec: ns.div_euclid(1_000_000_000),
            tv_nsec: ns.rem_euclid(1_000_000_000),
        },
    ];
    // SAFETY: valid path string and times array for the call.
    let r = unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            c.as_ptr(),
            times.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    assert_eq!(r, 0, "utimensat {}", path.display());
}

fn chmod(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

fn write(path: &Path, bytes: &[u8], mode: u32) {
    fs::write(path, bytes).unwrap();
    chmod(path, mode);
}

fn mkfifo(path: &Path) {
    let c = CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: valid path string for the call.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
}

/// Deterministic bytes that do not compress.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Give every entry under `root` (root included) a distinct mtime, children
/// before their directory.
fn stamp_mtimes(root: &Path, base: i64) {
    let mut all = Vec::new();
    collect(root, &mut all);
    for (i, p) in all.iter().rev().enumerate() {
        set_mtime(p, base + i as i64 * 1_000_000_007 + 123_456_789);
    }
}

fn collect(p: &Path, out: &mut Vec<PathBuf>) {
    out.push(p.to_path_buf());
    if fs::symlink_metadata(p).unwrap().is_dir() {
        let mut kids: Vec<PathBuf> = fs::read_dir(p)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        kids.sort();
        for k in kids {
            collect(&k, out);
        }
    }
}

/// What a host entry is, in every respect import and export keep.
#[derive(Debug, PartialEq, Eq, Clone)]
enum Kind {
    Dir,
    File(Vec<u8>),
    Link(PathBuf),
}

#[derive(Debug, PartialEq, Eq, Clone)]
struct Node {
    kind: Kind,
    /// Permission bits (0 for links, whose bits Linux does not keep).
    mode: u32,
    mtime_ns: i64,
    uid: u32,
    gid: u32,
}

/// Every entry under `root` (root itself as ""), never following links.
fn snapshot(root: &Path) -> BTreeMap<PathBuf, Node> {
    let mut all = Vec::new();
    collect(root, &mut all);
    all.into_iter()
        .map(|p| {
            let md = fs::symlink_metadata(&p).unwrap();
            let kind = if md.file_type().is_symlink() {
                Kind::Link(fs::read_link(&p).unwrap())
            } else if md.is_dir() {
                Kind::Dir
            } else {
                Kind::File(fs::read(&p).unwrap())
            };
            let node = Node {
                mode: if matches!(kind, Kind::Link(_)) {
                    0
                } else {
                    md.mode() & 0o7777
                },
                kind,
                mtime_ns: md.mtime() * 1_000_000_000 + md.mtime_nsec(),
                uid: md.uid(),
                gid: md.gid(),
            };
            (p.strip_prefix(root).unwrap().to_path_buf(), node)
        })
        .collect()
}

/// Compare two snapshots entry by entry, naming the first difference.
fn assert_same_tree(want: &BTreeMap<PathBuf, Node>, got: &BTreeMap<PathBuf, Node>, what: &str) {
    let wk: Vec<_> = want.keys().collect();
    let gk: Vec<_> = got.keys().collect();
    assert_eq!(wk, gk, "{what}: different entries");
    for (p, w) in want {
        let g = &got[p];
        if w.kind != g.kind {
            panic!("{what}: {} differs in kind or content", p.display());
        }
        assert_eq!(w, g, "{what}: {} differs", p.display());
    }
}

/// The number of transactions in the log.
fn log_len(sh: &Shell) -> usize {
    sh.ok("log").lines().filter(|l| l.starts_with('T')).count()
}

/// Paths written (added, changed or removed) by transaction `t`.
fn touched(sh: &Shell, t: usize) -> Vec<String> {
    let out = sh.ok(&format!(
        "sql --format tsv \"SELECT DISTINCT path FROM file_history FOR SYSTEM_TIME ALL \
         WHERE valid_from_tx = {t} OR valid_to_tx = {t} ORDER BY path\""
    ));
    out.lines().skip(1).map(str::to_string).collect()
}

fn p(path: &Path) -> String {
    path.display().to_string()
}

/// The first version of the round-trip tree.
fn build_v1(h: &Path) {
    fs::create_dir(h).unwrap();
    let all_bytes: Vec<u8> = (0..=255u8).cycle().take(256 * 4).collect();
    write(&h.join("bin.dat"), &all_bytes, 0o600);
    write(&h.join("empty"), b"", 0o644);
    write(&h.join("big.bin"), &noise(3 << 20, 7), 0o644);
    write(&h.join("suid"), b"#!/bin/sh\n", 0o4755);
    write(
        &h.join("weird\nname\t\u{1}"),
        b"control characters\n",
        0o640,
    );
    fs::create_dir(h.join("tmp")).unwrap();
    write(&h.join("tmp/junk"), b"junk\n", 0o644);
    chmod(&h.join("tmp"), 0o1777);
    fs::create_dir_all(h.join("sub/nested/deep")).unwrap();
    write(&h.join("sub/nested/deep/file.txt"), b"hello\n", 0o755);
    chmod(&h.join("sub"), 0o750);
    symlink("sub/nested", h.join("rel")).unwrap();
    symlink("/etc/passwd", h.join("abs")).unwrap();
    symlink("does/not/exist", h.join("dangling")).unwrap();
    symlink("../../outside", h.join("sub/escape")).unwrap();
    stamp_mtimes(h, 1_600_000_000_000_000_000);
}

/// Changes for the second version: an edit that keeps size and mtime, an
/// addition, a removal, a chmod, a file replaced by a directory and a
/// directory (with content) replaced by a file.
fn change_to_v2(h: &Path) {
    let bin = h.join("bin.dat");
    let before = fs::symlink_metadata(&bin).unwrap();
    let mut bytes = fs::read(&bin).unwrap();
    bytes[100] ^= 0xff;
    fs::write(&bin, &bytes).unwrap();
    set_mtime(&bin, before.mtime() * 1_000_000_000 + before.mtime_nsec());
    write(&h.join("added.txt"), b"new\n", 0o644);
    set_mtime(&h.join("added.txt"), 1_700_000_000_000_000_001);
    fs::remove_file(h.join("empty")).unwrap();
    chmod(&h.join("sub/nested/deep/file.txt"), 0o700);
    fs::remove_file(h.join("suid")).unwrap();
    fs::create_dir(h.join("suid")).unwrap();
    write(&h.join("suid/inner"), b"inner\n", 0o644);
    set_mtime(&h.join("suid/inner"), 1_700_000_000_000_000_002);
    set_mtime(&h.join("suid"), 1_700_000_000_000_000_003);
    fs::remove_dir_all(h.join("tmp")).unwrap();
    write(&h.join("tmp"), b"now a file\n", 0o600);
    set_mtime(&h.join("tmp"), 1_700_000_000_000_000_004);
    set_mtime(h, 1_700_000_000_000_000_005);
}

// ----- round trips -------------------------------------------------------------

#[test]
fn round_trip_every_state_and_only_differences_recorded() {
    let sh = Shell::new();
    let base = tempfile::tempdir().unwrap();
    let h = base.path().join("h");
    build_v1(&h);
    let v1 = snapshot(&h);

    let out = sh.ok(&format!("import {} /d", p(&h)));
    assert!(out.contains("added"), "{out}");
    let t_v1 = log_len(&sh);
    assert_eq!(t_v1, 2, "init, then the import");
    assert!(sh.ok("cat /d/sub/nested/deep/file.txt") == "hello\n");
    assert_eq!(sh.ok("ls /d/sub"), "escape\nnested\n");

    // Unchanged: no transaction at all.
    let out = sh.ok(&format!("import {} /d", p(&h)));
    assert!(out.contains("nothing changed"), "{out}");
    assert_eq!(log_len(&sh), t_v1);

    change_to_v2(&h);
    let v2 = snapshot(&h);
    sh.ok(&format!("import {} /d", p(&h)));
    let t_v2 = log_len(&sh);
    assert_eq!(t_v2, 3);
    assert_eq!(
        touched(&sh, t_v2),
        [
            "/d",
            "/d/added.txt",
            "/d/bin.dat",
            "/d/empty",
            "/d/sub/nested/deep/file.txt",
            "/d/suid",
            "/d/suid/inner",
            "/d/tmp",
            "/d/tmp/junk",
        ],
        "only what changed is written"
    );
    // The import's transaction is recorded with its command line.
    assert!(sh.ok("log -n 1").contains(&format!("import {} /d", p(&h))));

    // Each past state comes back exactly as the host had it.
    for (t, want) in [(t_v1, &v1), (t_v2, &v2)] {
        let dest = base.path().join(format!("e{t}"));
        sh.ok(&format!("export --as-of T{t} /d {}", p(&dest)));
        assert_same_tree(want, &snapshot(&dest), &format!("export of T{t}"));
    }
    // The present, from the command line.
    let dest = base.path().join("now");
    let r = sh.args(&["export", "/d", &p(&dest)]);
    expect_code(r, 0, "dbos export");
    assert_same_tree(&v2, &snapshot(&dest), "export of the present");

    // A single file goes into HOSTDIR under its name.
    let one = base.path().join("one");
    sh.ok(&format!("export --as-of T{t_v1} /d/suid {}", p(&one)));
    let got = snapshot(&one);
    assert_eq!(got[Path::new("suid")], v1[Path::new("suid")]);
}

#[test]
fn command_line_import_and_symlinked_hostdir() {
    let sh = Shell::new();
    let base = tempfile::tempdir().unwrap();
    let real = base.path().join("real");
    fs::create_dir_all(real.join("a")).unwrap();
    write(&real.join("a/f"), b"f\n", 0o644);
    symlink(&real, base.path().join("via-link")).unwrap();
    let r = sh.args(&["import", &p(&base.path().join("via-link")), "/x"]);
    expect_code(r, 0, "dbos import");
    assert_eq!(sh.ok("cat /x/a/f"), "f\n");
    assert_eq!(sh.ok("ls /x"), "a\n");
    // The default PATH is HOSTDIR's name in the working directory (the
    // link's target's name for a link), and the rest of the working
    // directory is left alone.
    sh.ok("mkdir /w; echo keep > /w/keep");
    sh.ok(&format!("cd /w; import {}", p(&real)));
    assert_eq!(sh.ok("cat /w/real/a/f"), "f\n");
    assert_eq!(sh.ok("cat /w/keep"), "keep\n");
    sh.ok(&format!(
        "cd /w; import {}",
        p(&base.path().join("via-link"))
    ));
    assert_eq!(sh.ok("ls /w"), "keep\nreal\n");
    // The root has no name to default to.
    let err = sh.fails("import /", 2);
    assert!(err.contains("give the PATH"), "{err}");
}

// ----- escapes -----------------------------------------------------------------

#[test]
fn import_stores_links_and_never_reads_through_them() {
    let sh = Shell::new();
    let base = tempfile::tempdir().unwrap();
    let outside = base.path().join("outside");
    fs::create_dir(&outside).unwrap();
    write(&outside.join("secret"), b"secret\n", 0o644);
    let h = base.path().join("h");
    fs::create_dir(&h).unwrap();
    symlink(&outside, h.join("abs")).unwrap();
    symlink("../outside", h.join("rel")).unwrap();
    symlink("loop", h.join("loop")).unwrap();
    sh.ok(&format!("import {} /imp", p(&h)));
    assert_eq!(sh.ok("find /imp"), "/imp\n/imp/abs\n/imp/loop\n/imp/rel\n");
    let files = sh.ok("sql --format tsv \"SELECT path, type, target FROM files WHERE path LIKE '/imp/%' ORDER BY path\"");
    assert_eq!(
        files,
        format!(
            "path\ttype\ttarget\n/imp/abs\tsymlink\t{}\n/imp/loop\tsymlink\tloop\n/imp/rel\tsymlink\t../outside\n",
            p(&outside)
        )
    );
    assert!(!sh.ok("sql \"SELECT path FROM files\"").contains("secret"));
}

#[test]
fn export_never_writes_outside_hostdir() {
    let sh = Shell::new();
    let base = tempfile::tempdir().unwrap();
    let outside = base.path().join("outside");
    fs::create_dir(&outside).unwrap();
    sh.ok(&format!(
        "mkdir -p /t/d; echo data > /t/file; echo inner > /t/d/f; \
         ln -s ../../outside /t/up; ln -s {} /t/abs; ln -s ../../outside/new /t/d/dangling",
        p(&outside)
    ));

    // The tree's links are written as links, not through.
    let e = base.path().join("a/e");
    fs::create_dir(base.path().join("a")).unwrap();
    sh.ok(&format!("export /t {}", p(&e)));
    assert_eq!(
        fs::read_link(e.join("up")).unwrap(),
        Path::new("../../outside")
    );
    assert_eq!(fs::read_link(e.join("abs")).unwrap(), outside);
    assert_eq!(fs::read(e.join("d/f")).unwrap(), b"inner\n");
    assert_eq!(fs::read_dir(&outside).unwrap().count(), 0);

    // Links already in HOSTDIR, named like tree entries and pointing
    // outside: refused without --force, replaced (not followed) with it.
    let f = base.path().join("a/f");
    fs::create_dir(&f).unwrap();
    symlink(&outside, f.join("d")).unwrap();
    symlink(outside.join("victim"), f.join("file")).unwrap();
    symlink(&outside, f.join("up")).unwrap();
    let err = sh.fails(&format!("export /t {}", p(&f)), 1);
    assert!(
        err.contains("not empty") && err.contains("--force"),
        "{err}"
    );
    sh.ok(&format!("export --force /t {}", p(&f)));
    assert_eq!(
        fs::read_dir(&outside).unwrap().count(),
        0,
        "nothing outside"
    );
    assert!(fs::symlink_metadata(f.join("d")).unwrap().is_dir());
    assert!(fs::symlink_metadata(f.join("file")).unwrap().is_file());
    assert_eq!(fs::read(f.join("file")).unwrap(), b"data\n");
    assert_eq!(fs::read(f.join("d/f")).unwrap(), b"inner\n");
    assert_eq!(
        fs::read_link(f.join("up")).unwrap(),
        Path::new("../../outside")
    );
    // Exporting again over it (links in the way of links) still writes nothing outside.
    sh.ok(&format!("export --force /t {}", p(&e)));
    assert_eq!(fs::read_dir(&outside).unwrap().count(), 0);
}

// ----- skips -------------------------------------------------------------------

#[test]
fn unimportable_entries_are_reported_and_strict_refuses() {
    let sh = Shell::new();
    let base = tempfile::tempdir().unwrap();
    let h = base.path().join("h");
    fs::create_dir(&h).unwrap();
    write(&h.join("good"), b"good\n", 0o644);
    write(&h.join("later-a-fifo"), b"kept\n", 0o644);
    sh.ok(&format!("import {} /s", p(&h)));
    let before = log_len(&sh);

    mkfifo(&h.join("fifo"));
    fs::remove_file(h.join("later-a-fifo")).unwrap();
    mkfifo(&h.join("later-a-fifo"));
    let _sock = std::os::unix::net::UnixListener::bind(h.join("sock")).unwrap();
    fs::write(h.join(OsStr::from_bytes(b"bad\xffname")), b"x").unwrap();

    // --strict: refused, nothing changed, each reason named.
    let err = sh.fails(&format!("import --strict {} /s", p(&h)), 1);
    assert!(err.contains("--strict"), "{err}");
    assert!(
        err.contains(&format!("{}: a FIFO", p(&h.join("fifo")))),
        "{err}"
    );
    assert!(
        err.contains("bad\\xffname: name is not valid UTF-8"),
        "{err}"
    );
    assert!(err.contains("sock: a socket"), "{err}");
    assert_eq!(log_len(&sh), before);

    // Without: what can be imported is, every skip is reported, status 1.
    write(&h.join("new"), b"new\n", 0o644);
    let r = expect_code(sh.run(&format!("import {} /s", p(&h))), 1, "import");
    assert!(r.err.contains("dbos: import: 4 files skipped"), "{}", r.err);
    assert_eq!(
        r.err.lines().filter(|l| l.contains("skipped /")).count(),
        4,
        "{}",
        r.err
    );
    assert_eq!(log_len(&sh), before + 1);
    assert_eq!(sh.ok("cat /s/new"), "new\n");
    // A skipped entry keeps what the tree held under its name.
    assert_eq!(sh.ok("cat /s/later-a-fifo"), "kept\n");
    assert_eq!(sh.ok("ls /s"), "good\nlater-a-fifo\nnew\n");
}

#[test]
fn paths_too_long_for_the_tree_are_skipped() {
    let sh = Shell::new();
    let base = tempfile::tempdir().unwrap();
    let h = base.path().join("h");
    fs::create_dir(&h).unwrap();
    // 20 levels of 250-byte names: past 4096 bytes below /p, and past the
    // host's PATH_MAX too, so built with *at calls.
    let name = "n".repeat(250);
    let cname = CString::new(name.as_str()).unwrap();
    let top = CString::new(h.as_os_str().as_bytes()).unwrap();
    // SAFETY: plain system calls on descriptors this test owns.
    unsafe {
        let mut fd = libc::open(top.as_ptr(), libc::O_RDONLY | libc::O_DIRECTORY);
        assert!(fd >= 0);
        for _ in 0..20 {
            assert_eq!(libc::mkdirat(fd, cname.as_ptr(), 0o755), 0);
            let next = libc::openat(fd, cname.as_ptr(), libc::O_RDONLY | libc::O_DIRECTORY);
            assert!(next >= 0);
            libc::close(fd);
            fd = next;
        }
        libc::close(fd);
    }
    let r = expect_code(sh.run(&format!("import {} /p", p(&h))), 1, "import");
    assert!(r.err.contains("longer than 4096 bytes"), "{}", r.err);
    assert!(r.err.contains("1 file skipped"), "{}", r.err);
    let depth = sh.ok("find /p -type d").lines().count();
    assert_eq!(depth, 17, "/p and the 16 levels that fit");
}

// ----- bad input ---------------------------------------------------------------

#[test]
fn bad_input_is_refused_and_changes_nothing() {
    let sh = Shell::new();
    let base = tempfile::tempdir().unwrap();
    let file = base.path().join("file");
    write(&file, b"x", 0o644);
    let dir = base.path().join("dir");
    fs::create_dir(&dir).unwrap();
    write(&dir.join("x"), b"x", 0o644);
    sh.ok("echo x > /f");
    let before = sh.ok("log; find /");

    let missing = base.path().join("missing");
    let err = sh.fails(&format!("import {} /m", p(&missing)), 1);
    assert_eq!(
        err,
        format!("dbos: import: {}: no such directory\n", p(&missing))
    );
    let err = sh.fails(&format!("import {} /m", p(&file)), 1);
    assert_eq!(
        err,
        format!("dbos: import: {}: not a directory\n", p(&file))
    );
    let err = sh.fails(&format!("import {} /f", p(&dir)), 1);
    assert_eq!(
        err,
        "dbos: import: /f: not a directory in the versioned tree\n"
    );
    let err = sh.fails("import", 2);
    assert!(err.starts_with("dbos: import: "), "{err}");
    assert_eq!(sh.ok("log; find /"), before, "history unchanged");

    let err = sh.fails(&format!("export / {}", p(&dir)), 1);
    assert_eq!(
        err,
        format!(
            "dbos: export: {}: directory is not empty (use --force to write into it)\n",
            p(&dir)
        )
    );
    let err = sh.fails(&format!("export / {}", p(&file)), 1);
    assert_eq!(
        err,
        format!("dbos: export: {}: not a directory\n", p(&file))
    );
    let err = sh.fails(&format!("export /nope {}", p(&base.path().join("new"))), 1);
    assert_eq!(err, "dbos: export: /nope: no such file or directory\n");
    assert!(!base.path().join("new").exists());
    let err = sh.fails(
        &format!("export --as-of T99 / {}", p(&base.path().join("new"))),
        1,
    );
    assert!(err.contains("T99"), "{err}");
    assert_eq!(fs::read(dir.join("x")).unwrap(), b"x");
    assert_eq!(sh.ok("log; find /"), before, "history unchanged");

    // The variable form of export still works.
    assert_eq!(sh.ok("export A=1 B; export"), "export A=1\nexport B=\n");
}

/// `export NAME NAME` is the shell's variable export, as in POSIX shells;
/// on the command line, where variables die with the process, it is the
/// directory export, and in the shell a likely mix-up is pointed out.
#[test]
fn export_with_name_like_operands() {
    let sh = Shell::new();
    let base = tempfile::tempdir().unwrap();
    sh.ok("mkdir /etc; echo x > /etc/f");
    let out = base.path().join("out");
    let r = sh.args(&["export", "etc", &p(&out)]);
    expect_code(r, 0, "dbos export etc OUT");
    assert_eq!(fs::read(out.join("f")).unwrap(), b"x\n");
    let r = expect_code(sh.run("export etc out"), 0, "export etc out");
    assert!(r.err.contains("write: export ./etc out"), "{}", r.err);
}
