//! Import of hostile host trees (`dbos_hostdir::import`) and export back
//! (`dbos_hostdir::export`). Fuzz bytes build a small tree in a temporary
//! directory: names with newlines and control characters, names that are
//! not UTF-8, over-long names, deep nesting, sockets, symbolic links to
//! `..`, to absolute paths, to themselves and in loops. The tree is imported
//! (in a transaction never committed), exported into a fresh directory and
//! compared. Never a panic; the import reports what it skips; the export
//! equals the tree less the skipped entries; nothing outside the export
//! directory changes.
#![no_main]

use arbitrary::Arbitrary;
use dbos_engine::{Actor, Engine, VPath};
use dbos_hostdir::{export, import, ExportOptions, ImportOptions, NoProgress};
use libfuzzer_sys::fuzz_target;
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};

#[derive(Arbitrary, Debug)]
enum Target {
    /// Any bytes (NUL removed).
    Raw(Vec<u8>),
    /// `../` repeated, then `outside`: out of the tree.
    Up(u8),
    /// The absolute path of the directory beside the tree.
    Outside,
    /// The link's own name: a loop.
    Own,
    /// `.`: a link to its own directory.
    Dot,
}

#[derive(Arbitrary, Debug)]
enum Op {
    /// A directory, entered.
    Dir(Vec<u8>),
    /// Back to the parent directory.
    Leave,
    /// A file with content.
    File(Vec<u8>, Vec<u8>),
    /// A symbolic link.
    Link(Vec<u8>, Target),
    /// A name of `n` bytes (up to 300: past 255 the host refuses it).
    Long(u16),
    /// A Unix socket: a special file import must skip.
    Socket(Vec<u8>),
    /// A chain of `n % 48` nested directories with 100-byte names (48
    /// levels pass the 4,096-byte path limit of the tree).
    Deep(u8),
}

fn name(raw: &[u8]) -> OsString {
    let mut b: Vec<u8> = raw
        .iter()
        .copied()
        .filter(|&c| c != b'/' && c != 0)
        .collect();
    b.truncate(255);
    if b.is_empty() || b == b"." || b == b".." {
        b.push(b'x');
    }
    OsString::from_vec(b)
}

/// Builds the tree; every failure to create an entry (name taken, too long)
/// just leaves it out.
fn build(root: &Path, outside: &Path, ops: &[Op]) {
    let mut cwd = root.to_path_buf();
    let deep = "d".repeat(100);
    let mut levels = 0;
    for op in ops.iter().take(64) {
        match op {
            Op::Dir(n) => {
                let p = cwd.join(name(n));
                if std::fs::create_dir(&p).is_ok() {
                    cwd = p;
                }
            }
            Op::Leave => {
                if cwd != root {
                    cwd.pop();
                }
            }
            Op::File(n, body) => {
                let _ = std::fs::write(cwd.join(name(n)), body);
            }
            Op::Link(n, t) => {
                let n = name(n);
                let target: OsString = match t {
                    Target::Raw(b) => {
                        let b: Vec<u8> = b.iter().copied().filter(|&c| c != 0).collect();
                        if b.is_empty() {
                            continue;
                        }
                        OsString::from_vec(b)
                    }
                    Target::Up(k) => {
                        OsString::from("../".repeat(usize::from(*k % 40) + 1) + "outside")
                    }
                    Target::Outside => outside.as_os_str().to_owned(),
                    Target::Own => n.clone(),
                    Target::Dot => OsString::from("."),
                };
                let _ = symlink(&target, cwd.join(&n));
            }
            Op::Long(len) => {
                let len = usize::from(*len % 301).max(1);
                let _ = std::fs::write(cwd.join(OsStr::from_bytes(&vec![b'L'; len])), b"long");
            }
            Op::Socket(n) => {
                let _ = std::os::unix::net::UnixListener::bind(cwd.join(name(n)));
            }
            Op::Deep(k) => {
                for _ in 0..*k % 48 {
                    // Bounded: deep trees cost quadratic time to build.
                    levels += 1;
                    if levels > 64 {
                        break;
                    }
                    let p = cwd.join(&deep);
                    if std::fs::create_dir(&p).is_err() {
                        break;
                    }
                    cwd = p;
                }
            }
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Node {
    Dir(u32),
    File(u32, Vec<u8>),
    Link(OsString),
    Other,
}

/// Every entry below `dir` by relative path, links not followed; entries
/// in `skip` (absolute paths) and their subtrees left out.
fn snapshot(dir: &Path, skip: &BTreeSet<PathBuf>) -> BTreeMap<PathBuf, Node> {
    let mut out = BTreeMap::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if skip.contains(&p) {
                continue;
            }
            let Ok(md) = std::fs::symlink_metadata(&p) else {
                continue;
            };
            let mode = md.permissions().mode() & 0o7777;
            let node = if md.file_type().is_symlink() {
                Node::Link(
                    std::fs::read_link(&p)
                        .map(|t| t.into_os_string())
                        .unwrap_or_default(),
                )
            } else if md.is_dir() {
                todo.push(p.clone());
                Node::Dir(mode)
            } else if md.is_file() {
                Node::File(mode, std::fs::read(&p).unwrap_or_default())
            } else {
                Node::Other
            };
            let rel = p.strip_prefix(dir).map(Path::to_path_buf).unwrap_or(p);
            out.insert(rel, node);
        }
    }
    out
}

thread_local! {
    /// The engine, made on first use (it is not `Send`).
    static ENGINE: RefCell<Option<(Engine, tempfile::TempDir)>> = const { RefCell::new(None) };
}

fn engine() -> (Engine, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let engine = Engine::open(&dir.path().join("fuzz.db").display().to_string()).expect("engine");
    (engine, dir)
}

fuzz_target!(|ops: Vec<Op>| {
    let tmp = tempfile::tempdir().expect("temp dir");
    let src = tmp.path().join("src");
    let outside = tmp.path().join("outside");
    let out = tmp.path().join("out");
    std::fs::create_dir(&src).expect("mkdir src");
    std::fs::create_dir(&outside).expect("mkdir outside");
    build(&src, &outside, &ops);
    let before = snapshot(tmp.path(), &BTreeSet::new());

    ENGINE.with_borrow_mut(|e| {
        let (engine, _db) = e.get_or_insert_with(engine);
        check(engine, tmp.path(), &src, &out, &outside, before)
    });
});

fn check(
    engine: &mut Engine,
    tmp: &Path,
    src: &Path,
    out: &Path,
    outside: &Path,
    before: BTreeMap<PathBuf, Node>,
) {
    let mut tx = engine.begin("main", &Actor::default()).expect("begin");
    let dest = VPath::parse("/fz").expect("path");
    let report = import(
        &mut tx,
        src,
        &dest,
        &ImportOptions::default(),
        &mut NoProgress,
    )
    .unwrap_or_else(|e| panic!("import failed: {e}"));
    let written = export(
        &mut tx,
        &dest,
        out,
        &ExportOptions::default(),
        &mut NoProgress,
    )
    .unwrap_or_else(|e| panic!("export failed: {e}"));
    drop(tx);

    // Nothing but `out` changed; `outside` is still empty.
    let mut after = snapshot(tmp, &BTreeSet::from([out.to_path_buf()]));
    let mut before_no_out = before;
    before_no_out.remove(Path::new("out"));
    after.remove(Path::new("out"));
    assert_eq!(
        after, before_no_out,
        "the export wrote outside its directory"
    );
    assert!(std::fs::read_dir(outside).expect("list").next().is_none());

    // The export is the tree less what the import reported skipping.
    let skipped: BTreeSet<PathBuf> = report.skipped.iter().map(|s| s.host_path.clone()).collect();
    let expected = snapshot(src, &skipped);
    let got = snapshot(out, &BTreeSet::new());
    assert_eq!(
        got, expected,
        "export differs from the imported tree; report {report:?}"
    );
    assert_eq!(
        written.dirs + written.files + written.symlinks,
        expected.len() as u64,
        "{written:?}"
    );
}
