//! Process death everywhere: the engine's `kill -9` loop (engine/tests/
//! crash.rs) extended to the real `dbos` binary doing long operations:
//!
//! - `dbos import HOSTDIR` of a tree of thousands of files,
//! - `merge` of a branch with thousands of changes,
//! - `dbos db copy SRC DST` (SQLite to SQLite),
//! - programs writing through a `dbos mount` (the mount is killed).
//!
//! Each test first runs its operation once undisturbed to measure how long
//! it takes, then SIGKILLs it after a random delay spread over 0..1.2x that
//! duration, so kills land while it reads, while it writes and inside its
//! commit. After every kill: the operation is all or nothing (the state is
//! exactly the one before or the one after), `dbos verify` is clean, and
//! running the operation again completes. Each test prints where its kills
//! landed (`kill-loops: ...` lines on standard error; run with
//! `--nocapture` to see them).
//!
//! Rounds: a few by default (the whole file stays well under two minutes);
//! `DBOS_KILL_ROUNDS=<n>` for long runs.

use dbos_engine::{Engine, Entry, TxId, VPath};
use rand::Rng;
use std::collections::BTreeMap;
use std::fs;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

// ----- shared helpers ---------------------------------------------------------

fn rounds(default: usize) -> usize {
    std::env::var("DBOS_KILL_ROUNDS")
        .ok()
        .map(|v| v.parse().expect("DBOS_KILL_ROUNDS must be a number"))
        .unwrap_or(default)
}

/// `dbos --db DB --user tester` with a clean environment, HOME in `home`.
fn dbos(home: &Path, db: &str) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_dbos"));
    c.env_remove("DBOS_DB")
        .env("HOME", home)
        .env("NO_COLOR", "1")
        .args(["--db", db, "--user", "tester"])
        .stdin(Stdio::null());
    c
}

fn text(o: &Output) -> String {
    format!(
        "status {}\nstdout: {}\nstderr: {}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Run to completion; must succeed; the time it took.
fn ok(mut c: Command, what: &str) -> Duration {
    let t = Instant::now();
    let o = c.output().expect("run dbos");
    assert!(o.status.success(), "{what}: {}", text(&o));
    t.elapsed()
}

/// `dbos verify` must be clean.
fn assert_verifies(home: &Path, db: &str) -> String {
    let o = dbos(home, db)
        .arg("verify")
        .output()
        .expect("run dbos verify");
    assert!(o.status.success(), "verify after a kill: {}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(out.contains("the hash chain is intact"), "{out}");
    out
}

/// Start `c` (output to `log`), SIGKILL it after `delay`. Gives true when it
/// was still running at the kill (false: it had already finished, and must
/// have succeeded).
fn kill_after(mut c: Command, delay: Duration, log: &Path) -> bool {
    let f = fs::File::create(log).expect("log file");
    let mut child = c
        .stdout(f.try_clone().expect("log file"))
        .stderr(f)
        .spawn()
        .expect("spawn dbos");
    std::thread::sleep(delay);
    kill_9(&mut child, log)
}

fn kill_9(child: &mut Child, log: &Path) -> bool {
    if let Some(st) = child.try_wait().expect("try_wait") {
        assert!(
            st.success(),
            "finished before the kill, but failed ({st}): {}",
            fs::read_to_string(log).unwrap_or_default()
        );
        return false;
    }
    child.kill().expect("SIGKILL");
    let st = child.wait().expect("wait");
    if st.signal() == Some(9) {
        return true;
    }
    // It finished between try_wait and kill.
    assert!(
        st.success(),
        "{st}: {}",
        fs::read_to_string(log).unwrap_or_default()
    );
    false
}

/// A random delay over 0..1.2x `d`: a tenth of the kills fall after the
/// measured end (the process exiting, or already gone).
fn delay_over(rng: &mut impl Rng, d: Duration) -> Duration {
    let max = (d.as_micros() as u64 * 12 / 10).max(1000);
    Duration::from_micros(rng.gen_range(0..max))
}

/// Where the kills of one test landed.
#[derive(Default)]
struct Points(BTreeMap<&'static str, usize>);

impl Points {
    fn add(&mut self, p: &'static str) {
        *self.0.entry(p).or_default() += 1;
    }
    fn report(&self, op: &str, measured: Duration, started: Instant) {
        let mid: usize = self
            .0
            .iter()
            .filter(|(k, _)| !k.starts_with("after"))
            .map(|(_, v)| v)
            .sum();
        let all: usize = self.0.values().sum();
        eprintln!(
            "kill-loops: {op}: survived {all} kill -9 points ({mid} mid-operation) in {:.1?}; \
             one undisturbed run takes {measured:.2?}; {:?}",
            started.elapsed(),
            self.0
        );
    }
}

/// A tree as the engine holds it below `root`: relative path -> what it is
/// (content bytes for files, target for links, "dir").
type Tree = BTreeMap<String, Vec<u8>>;

fn vp(s: &str) -> VPath {
    VPath::parse(s).expect("valid path")
}

fn db_tree(engine: &mut Engine, branch: &str, at: TxId, root: &str) -> Tree {
    let mut out = Tree::new();
    let mut v = engine.view_at(branch, at).expect("view");
    let at_path = |d: &str| vp(if d.is_empty() { "/" } else { d });
    if v.stat(&at_path(root)).expect("stat").is_none() {
        return out;
    }
    let mut todo = vec![root.to_string()];
    while let Some(dir) = todo.pop() {
        for (name, e) in v.read_dir(&at_path(&dir)).expect("read_dir") {
            let full = format!("{dir}/{name}");
            let rel = full[root.len() + 1..].to_string();
            match e {
                Entry::Dir { .. } => {
                    out.insert(rel, b"dir".to_vec());
                    todo.push(full);
                }
                Entry::Symlink { target, .. } => {
                    out.insert(rel, format!("-> {target}").into_bytes());
                }
                Entry::File { .. } => {
                    out.insert(rel, v.read_file(&vp(&full)).expect("read"));
                }
                Entry::Value(_) => panic!("value in the tree at {full}"),
            }
        }
    }
    out
}

fn host_tree(root: &Path) -> Tree {
    let mut out = Tree::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(dir) = todo.pop() {
        for e in fs::read_dir(&dir).expect("read_dir") {
            let e = e.expect("entry");
            let p = e.path();
            let rel = p
                .strip_prefix(root)
                .expect("below root")
                .display()
                .to_string();
            if e.file_type().expect("type").is_dir() {
                out.insert(rel, b"dir".to_vec());
                todo.push(p);
            } else {
                out.insert(rel, fs::read(&p).expect("read"));
            }
        }
    }
    out
}

fn open(db: &str) -> Engine {
    Engine::open(db).expect("reopen after kill")
}

fn describe(a: &Tree, b: &Tree) -> String {
    let only_a = a.keys().filter(|k| !b.contains_key(*k)).count();
    let only_b = b.keys().filter(|k| !a.contains_key(*k)).count();
    let differ = a
        .iter()
        .filter(|(k, v)| b.get(*k).is_some_and(|w| w != *v))
        .count();
    format!(
        "{} vs {} entries: {only_a} only in the first, {only_b} only in the second, {differ} differ",
        a.len(),
        b.len()
    )
}

/// Write the host tree of round `r`: `files` files in 40 directories, every
/// one with new content (so that each import rewrites all of them), a
/// seventh of them absent (a different seventh each round), a few large.
fn write_host_tree(root: &Path, files: usize, r: usize) {
    let _ = fs::remove_dir_all(root);
    let mut s = 0x5eed_u64 ^ (r as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let mut next = || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    };
    for i in 0..files {
        if (i + r).is_multiple_of(7) {
            continue;
        }
        let dir = root.join(format!("d{:02}", i % 40));
        fs::create_dir_all(&dir).expect("mkdir");
        let len = if i.is_multiple_of(500) {
            200_000
        } else {
            50 + (next() % 2000) as usize
        };
        let mut body = format!("round {r} file {i}\n").into_bytes();
        while body.len() < len {
            body.extend_from_slice(&next().to_le_bytes());
        }
        fs::write(dir.join(format!("f{i:05}")), body).expect("write");
    }
}

// ----- 1. import ---------------------------------------------------------------

#[test]
fn kill_9_during_import_is_all_or_nothing() {
    let files: usize = std::env::var("DBOS_KILL_IMPORT_FILES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let rounds = rounds(5);
    let tmp = tempfile::tempdir().expect("tmp");
    let home = tmp.path();
    let db = home.join("s.db").display().to_string();
    let host = home.join("host");
    let import = |host: &Path| {
        let mut c = dbos(home, &db);
        c.arg("import").arg(host).arg("/data");
        c
    };
    // Round 0 measures.
    write_host_tree(&host, files, 0);
    ok(import(&host), "first import");
    // Measure a typical import (every file rewritten), undisturbed.
    write_host_tree(&host, files, 1000);
    let mut measured = ok(import(&host), "measured import");
    let mut rng = rand::thread_rng();
    let mut points = Points::default();
    let started = Instant::now();
    for r in 1..=rounds {
        let before = {
            let mut e = open(&db);
            let head = e.head().expect("head");
            db_tree(&mut e, "main", head, "/data")
        };
        write_host_tree(&host, files, r);
        let want = host_tree(&host);
        let delay = delay_over(&mut rng, measured);
        let log = home.join(format!("import{r}.log"));
        let alive = kill_after(import(&host), delay, &log);
        let got = {
            let mut e = open(&db);
            let head = e.head().expect("head");
            db_tree(&mut e, "main", head, "/data")
        };
        let point = if got == before {
            "mid-import (rolled back)"
        } else if got == want {
            if alive {
                "mid-import (already committed)"
            } else {
                "after the import ended"
            }
        } else {
            panic!(
                "round {r}: /data is neither the state before nor the import: \
                 before: {}; import: {}",
                describe(&got, &before),
                describe(&got, &want)
            );
        };
        assert!(alive || got == want, "round {r}: finished but not imported");
        points.add(point);
        assert_verifies(home, &db);
        // Running the import again completes it (a whole import when the
        // kill rolled it back: measure again, the machine's load varies).
        let again = ok(import(&host), "import again");
        if got == before {
            measured = again;
        }
        let mut e = open(&db);
        let head = e.head().expect("head");
        assert!(
            db_tree(&mut e, "main", head, "/data") == want,
            "round {r}: the import run again did not give the host tree"
        );
        eprintln!("round {r}: killed after {delay:.2?}: {point}");
    }
    assert_verifies(home, &db);
    points.report(&format!("import of {files} files"), measured, started);
}

// ----- 2. merge ------------------------------------------------------------------

#[test]
fn kill_9_during_merge_is_all_or_nothing() {
    let files = 1500;
    let rounds = rounds(5);
    let tmp = tempfile::tempdir().expect("tmp");
    let home = tmp.path();
    let db = home.join("s.db").display().to_string();
    let host = home.join("host");
    write_host_tree(&host, files, 0);
    ok(
        {
            let mut c = dbos(home, &db);
            c.arg("import").arg(&host).arg("/m");
            c
        },
        "base import",
    );
    let mut rng = rand::thread_rng();
    let mut points = Points::default();
    let mut measured = Duration::ZERO;
    let started = Instant::now();
    // Round 0 measures (not killed).
    for r in 0..=rounds {
        let branch = format!("exp{r}");
        let mut c = dbos(home, &db);
        c.args(["-c", &format!("branch {branch}")]);
        ok(c, "branch");
        // Thousands of changes on the branch, one on main.
        write_host_tree(&host, files, r + 1);
        let mut c = dbos(home, &db);
        c.args(["--branch", &branch, "import"]).arg(&host).arg("/m");
        ok(c, "import on the branch");
        let mut c = dbos(home, &db);
        c.args(["-c", &format!("mkdir -p /main; echo {r} > /main/r{r}")]);
        ok(c, "change on main");
        let (before, want) = {
            let mut e = open(&db);
            let head = e.head().expect("head");
            let before = db_tree(&mut e, "main", head, "");
            let mut want: Tree = before
                .iter()
                .filter(|(k, _)| !k.starts_with("m/") && k.as_str() != "m")
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            want.insert("m".to_string(), b"dir".to_vec());
            for (k, v) in db_tree(&mut e, &branch, head, "/m") {
                want.insert(format!("m/{k}"), v);
            }
            (before, want)
        };
        let merge = || {
            let mut c = dbos(home, &db);
            c.args(["-c", &format!("merge {branch}")]);
            c
        };
        if r == 0 {
            measured = ok(merge(), "merge");
        } else {
            let delay = delay_over(&mut rng, measured);
            let log = home.join(format!("merge{r}.log"));
            let alive = kill_after(merge(), delay, &log);
            let got = {
                let mut e = open(&db);
                let head = e.head().expect("head");
                db_tree(&mut e, "main", head, "")
            };
            let point = if got == before {
                "mid-merge (rolled back)"
            } else if got == want {
                if alive {
                    "mid-merge (already committed)"
                } else {
                    "after the merge ended"
                }
            } else {
                panic!(
                    "round {r}: main is neither the state before nor the merge: \
                     before: {}; merged: {}",
                    describe(&got, &before),
                    describe(&got, &want)
                );
            };
            points.add(point);
            assert_verifies(home, &db);
            if got == before {
                measured = ok(merge(), "merge again");
            }
            eprintln!("round {r}: killed after {delay:.2?}: {point}");
        }
        let mut e = open(&db);
        let head = e.head().expect("head");
        assert!(
            db_tree(&mut e, "main", head, "") == want,
            "round {r}: main is not the merge"
        );
    }
    assert_verifies(home, &db);
    points.report(
        &format!("merge of {files} changed files"),
        measured,
        started,
    );
}

// ----- 3. db copy ------------------------------------------------------------------

/// What a killed copy left at a SQLite destination.
fn sqlite_state(path: &Path) -> &'static str {
    if !path.exists() {
        return "absent";
    }
    let conn = rusqlite::Connection::open(path).expect("open the destination");
    let has: i64 = conn
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE type='table' AND name='branches'",
            [],
            |r| r.get(0),
        )
        .expect("schema");
    if has == 0 {
        // A SQLite file whose schema was never committed.
        return "blank";
    }
    let (all, hidden): (i64, i64) = conn
        .query_row(
            "SELECT count(*), count(*) FILTER (WHERE deleted_us = -1) FROM branches",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("branches");
    classify(all, hidden, &path.display().to_string())
}

fn remove_sqlite(path: &Path) {
    for ext in ["", "-wal", "-shm", "-journal"] {
        let _ = fs::remove_file(format!("{}{ext}", path.display()));
    }
}

fn head_hash(verify_out: &str) -> String {
    verify_out
        .split("head hash ")
        .nth(1)
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|| panic!("no head hash in {verify_out:?}"))
}

/// Where a copy goes: a SQLite file, or a PostgreSQL database made anew.
enum Dst {
    Sqlite(std::path::PathBuf),
    Postgres { server: String, name: String },
}

impl Dst {
    fn new(home: &Path, server: Option<&str>, r: usize) -> Dst {
        let Some(server) = server else {
            return Dst::Sqlite(home.join(format!("dst{r}.db")));
        };
        let name = format!("dbos_kill_{}_{r}", std::process::id());
        let d = Dst::Postgres {
            server: server.to_string(),
            name,
        };
        d.recreate();
        d
    }

    fn admin(server: &str) -> postgres::Client {
        postgres::Client::connect(server, postgres::NoTls).expect("connect to DBOS_TEST_PG")
    }

    /// Empty it: a SQLite file removed, a PostgreSQL database made again.
    fn recreate(&self) {
        match self {
            Dst::Sqlite(p) => remove_sqlite(p),
            Dst::Postgres { server, name } => {
                let mut c = Dst::admin(server);
                c.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .expect("drop");
                c.batch_execute(&format!("CREATE DATABASE {name}"))
                    .expect("create");
            }
        }
    }

    fn drop_it(&self) {
        match self {
            Dst::Sqlite(p) => remove_sqlite(p),
            Dst::Postgres { server, name } => {
                Dst::admin(server)
                    .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .expect("drop");
            }
        }
    }

    fn location(&self) -> String {
        match self {
            Dst::Sqlite(p) => p.display().to_string(),
            Dst::Postgres { server, name } => {
                let base = server.rsplit_once('/').map_or(server.as_str(), |(b, _)| b);
                format!("{base}/{name}")
            }
        }
    }

    /// What a killed copy left there.
    fn state(&self) -> &'static str {
        match self {
            Dst::Sqlite(p) => sqlite_state(p),
            Dst::Postgres { .. } => {
                let mut c = postgres::Client::connect(&self.location(), postgres::NoTls)
                    .expect("connect to the destination");
                let has: bool = c
                    .query_one("SELECT to_regclass('branches') IS NOT NULL", &[])
                    .expect("schema")
                    .get(0);
                if !has {
                    return "blank";
                }
                let row = c
                    .query_one(
                        "SELECT count(*), count(*) FILTER (WHERE deleted_us = -1) FROM branches",
                        &[],
                    )
                    .expect("branches");
                classify(row.get(0), row.get(1), &self.location())
            }
        }
    }
}

fn classify(all: i64, hidden: i64, loc: &str) -> &'static str {
    match (all, hidden) {
        (0, _) => "empty",
        (a, h) if a == h => "unfinished",
        (_, 0) => "complete",
        _ => panic!("{loc}: some branches hidden, some not"),
    }
}

#[test]
fn kill_9_during_db_copy_leaves_no_usable_half_copy() {
    copy_loop(None, rounds(6));
}

#[test]
fn kill_9_during_db_copy_to_postgres_leaves_no_usable_half_copy() {
    let Ok(server) = std::env::var("DBOS_TEST_PG") else {
        eprintln!(
            "SKIPPED: DBOS_TEST_PG unset: the kill -9 loop of db copy to PostgreSQL did not run"
        );
        return;
    };
    copy_loop(Some(&server), rounds(3));
}

/// Copy a SQLite database (to SQLite, or to PostgreSQL on `server`), killing
/// the copy at random instants.
fn copy_loop(server: Option<&str>, rounds: usize) {
    let kind = if server.is_some() {
        "PostgreSQL"
    } else {
        "SQLite"
    };
    let tmp = tempfile::tempdir().expect("tmp");
    let home = tmp.path();
    let src = home.join("src.db").display().to_string();
    let host = home.join("host");
    // A source with many transactions and chunks.
    for r in 0..3 {
        write_host_tree(&host, 1000, r);
        let mut c = dbos(home, &src);
        c.arg("import").arg(&host).arg("/data");
        ok(c, "import into the source");
    }
    let script: String = (0..300)
        .map(|i| format!("echo {i} > /n{}\n", i % 50))
        .collect();
    let mut c = dbos(home, &src);
    c.args(["-c", &script]);
    ok(c, "small transactions");
    let src_hash = head_hash(&assert_verifies(home, &src));
    let copy = |dst: &str| {
        let mut c = dbos(home, &src);
        c.args(["db", "copy", &src, dst]);
        c
    };
    let first = Dst::new(home, server, 0);
    let mut measured = ok(copy(&first.location()), "undisturbed copy");
    assert_eq!(
        head_hash(&assert_verifies(home, &first.location())),
        src_hash
    );
    first.drop_it();
    let mut rng = rand::thread_rng();
    let mut points = Points::default();
    let started = Instant::now();
    for r in 1..=rounds {
        let dst = Dst::new(home, server, r);
        let loc = dst.location();
        let delay = delay_over(&mut rng, measured);
        let alive = kill_after(copy(&loc), delay, &home.join(format!("copy{r}.log")));
        let state = dst.state();
        match state {
            "absent" | "blank" | "empty" => {}
            "unfinished" => {
                // Not usable, and said so.
                let o = dbos(home, &loc).args(["-c", "ls /"]).output().expect("run");
                assert!(!o.status.success(), "a half copy opened: {}", text(&o));
                assert!(
                    String::from_utf8_lossy(&o.stderr).contains("it holds an unfinished copy"),
                    "opening a half copy: {}",
                    text(&o)
                );
                let o = copy(&loc).output().expect("run");
                assert!(!o.status.success(), "copy onto a half copy: {}", text(&o));
                let err = String::from_utf8_lossy(&o.stderr);
                assert!(
                    err.contains("unfinished copy") && err.contains("copy again"),
                    "{err}"
                );
                dst.recreate();
            }
            "complete" => {
                assert_eq!(head_hash(&assert_verifies(home, &loc)), src_hash);
                // A second copy onto it is refused.
                let o = copy(&loc).output().expect("run");
                assert!(!o.status.success(), "copy onto a full copy: {}", text(&o));
                assert!(String::from_utf8_lossy(&o.stderr).contains("not empty"));
            }
            _ => unreachable!(),
        }
        let point = match (state, alive) {
            ("complete", false) => "after the copy ended",
            ("complete", true) => "mid-copy (already finished)",
            ("unfinished", _) => "mid-copy (imported, not yet finished)",
            ("blank", _) => "mid-copy (schema not committed)",
            ("empty", _) => "mid-copy (schema made, nothing imported)",
            _ => "mid-copy (destination not yet created)",
        };
        points.add(point);
        if state != "complete" {
            measured = ok(copy(&loc), "copy again");
        }
        assert_eq!(head_hash(&assert_verifies(home, &loc)), src_hash);
        eprintln!("round {r}: killed after {delay:.2?}: {point}");
        dst.drop_it();
    }
    points.report(&format!("db copy (SQLite -> {kind})"), measured, started);
}

// ----- 4. a write through the FUSE mount -------------------------------------------

/// True when the mount test can run here (says so loudly when it cannot).
fn fuse_usable() -> bool {
    let root = unsafe { libc::geteuid() } == 0;
    let tool = Command::new("sh")
        .args(["-c", "command -v fusermount3"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !Path::new("/dev/fuse").exists() || !root || !tool {
        eprintln!(
            "SKIPPED: kill -9 of dbos mount needs /dev/fuse, root and fusermount3 \
             (/dev/fuse: {}, root: {root}, fusermount3: {tool})",
            Path::new("/dev/fuse").exists()
        );
        return false;
    }
    true
}

fn is_mounted(mp: &Path) -> bool {
    let text = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let want = mp.display().to_string();
    text.lines()
        .any(|l| l.split(' ').nth(4).is_some_and(|m| m == want))
}

fn lazy_unmount(mp: &Path) {
    if is_mounted(mp) {
        let _ = Command::new("fusermount3").arg("-uz").arg(mp).status();
    }
    if is_mounted(mp) {
        let _ = Command::new("umount").arg("-l").arg(mp).status();
    }
    assert!(!is_mounted(mp), "{} still mounted", mp.display());
}

/// What the writer puts in file `i` of round `r` (the Python writer below
/// makes the same bytes).
fn mount_content(r: usize, i: usize) -> Vec<u8> {
    let line = format!("round {r} file {i} .........................................\n");
    let len = 1000 + (i * 7919) % 300_000;
    line.as_bytes().iter().copied().cycle().take(len).collect()
}

/// Writes file after file under DIR, each in 16 KiB pieces, until an error
/// (the mount gone).
const MOUNT_WRITER: &str = r#"
import sys
d, r = sys.argv[1], int(sys.argv[2])
i = 0
try:
    while True:
        line = ("round %d file %d .........................................\n" % (r, i)).encode()
        n = 1000 + (i * 7919) % 300000
        body = (line * (n // len(line) + 1))[:n]
        with open("%s/r%d_%05d" % (d, r, i), "wb") as f:
            for k in range(0, n, 16384):
                f.write(body[k:k + 16384])
        i += 1
except OSError:
    pass
"#;

#[test]
fn kill_9_of_dbos_mount_leaves_whole_transactions() {
    if !fuse_usable() {
        return;
    }
    let rounds = rounds(6);
    let tmp = tempfile::tempdir().expect("tmp");
    let home = tmp.path();
    let db = home.join("s.db").display().to_string();
    let mut c = dbos(home, &db);
    c.args(["-c", "mkdir /w"]);
    ok(c, "mkdir");
    let mp = home.join("mnt");
    fs::create_dir(&mp).expect("mountpoint");
    let mp = mp.canonicalize().expect("canonical");
    let mut rng = rand::thread_rng();
    let mut points = Points::default();
    let started = Instant::now();
    let mut checked: TxId = open(&db).head().expect("head");
    let (mut whole, mut empty_only) = (0usize, 0usize);
    for r in 0..rounds {
        let log = home.join(format!("mount{r}.log"));
        let mut mount = dbos(home, &db)
            .arg("mount")
            .arg(&mp)
            .stdout(Stdio::null())
            .stderr(fs::File::create(&log).expect("log"))
            .spawn()
            .expect("start dbos mount");
        let deadline = Instant::now() + Duration::from_secs(20);
        while !is_mounted(&mp) {
            if let Some(st) = mount.try_wait().expect("try_wait") {
                panic!(
                    "dbos mount exited ({st}): {}",
                    fs::read_to_string(&log).unwrap_or_default()
                );
            }
            assert!(Instant::now() < deadline, "not mounted");
            std::thread::sleep(Duration::from_millis(20));
        }
        let mut writer = Command::new("python3")
            .args(["-c", MOUNT_WRITER])
            .arg(mp.join("w"))
            .arg(r.to_string())
            .stdin(Stdio::null())
            .spawn()
            .expect("python3");
        // The kill falls after the writer got going (Python starts slowly
        // on a loaded machine).
        let first = mp.join(format!("w/r{r}_00000"));
        let deadline = Instant::now() + Duration::from_secs(30);
        while !first.exists() {
            assert!(Instant::now() < deadline, "the writer never wrote");
            std::thread::sleep(Duration::from_millis(5));
        }
        let delay = Duration::from_millis(rng.gen_range(0..1500));
        std::thread::sleep(delay);
        let seen = fs::read_dir(mp.join("w")).map_or(0, |d| d.count());
        assert!(kill_9(&mut mount, &log), "dbos mount ended by itself");
        let _ = writer.kill();
        let _ = writer.wait();
        lazy_unmount(&mp);
        // Every transaction the mount committed is whole: each file it
        // wrote is empty (created, data not yet committed) or complete.
        let mut e = open(&db);
        let head = e.head().expect("head");
        let mut files: BTreeMap<String, bool> = BTreeMap::new();
        for id in checked + 1..=head {
            let changes = e.changes(id).expect("changes");
            let mut v = e.view_at("main", id).expect("view");
            for ch in changes {
                if ch.path == "/w" {
                    continue;
                }
                let Some(name) = ch.path.strip_prefix("/w/") else {
                    panic!("T{id}: stray change {}", ch.path)
                };
                let Some(Entry::File { .. }) = ch.after else {
                    panic!("T{id}: {} is not a file", ch.path)
                };
                let (rr, i) = name
                    .strip_prefix('r')
                    .and_then(|n| n.split_once('_'))
                    .map(|(a, b)| (a.parse::<usize>().unwrap(), b.parse::<usize>().unwrap()))
                    .expect("writer's name");
                let got = v.read_file(&vp(&ch.path)).expect("read");
                let full = got == mount_content(rr, i);
                assert!(
                    got.is_empty() || full,
                    "T{id}: {} holds {} bytes, neither empty nor its {} bytes",
                    ch.path,
                    got.len(),
                    mount_content(rr, i).len()
                );
                *files.entry(ch.path.clone()).or_default() |= full;
            }
        }
        drop(e);
        let n_whole = files.values().filter(|f| **f).count();
        whole += n_whole;
        empty_only += files.len() - n_whole;
        points.add(if files.len() > n_whole {
            "mid-file (created, data not committed)"
        } else {
            "between files"
        });
        assert_verifies(home, &db);
        checked = head;
        eprintln!(
            "round {r}: mount killed after {delay:.2?}: {n_whole} files committed whole, {} only created \
             ({seen} entries listed before the kill)",
            files.len() - n_whole
        );
    }
    eprintln!("kill-loops: mount: {whole} files committed whole, {empty_only} created but killed before their data");
    assert!(whole > 0, "nothing was ever written through the mount");
    points.report("writes through dbos mount", Duration::ZERO, started);
}
