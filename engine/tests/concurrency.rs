//! Several processes on one database: concurrent writers lose no update,
//! readers never see a partial transaction, and an open transaction in one
//! process blocks no other process.
//!
//! The test binary re-executes itself (the sled pattern): with
//! `DBOS_CONC_CHILD=<database>` set, the `conc_child` test plays the role named
//! by `DBOS_CONC_ROLE` and reports on stdout in lines starting with `@@ `.

mod common;

use dbos_engine::backend::sqlite::SqliteBackend;
use dbos_engine::{Actor, Engine, Error, TxId, VPath};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::time::{Duration, Instant};

const CHILD_ENV: &str = "DBOS_CONC_CHILD";
const ROLE_ENV: &str = "DBOS_CONC_ROLE";
const ID_ENV: &str = "DBOS_CONC_ID";
const COUNT_ENV: &str = "DBOS_CONC_COUNT";
const CHILD_TEST: &str = "conc_child";

/// Files each writer commits (one autocommit each).
const WRITES: usize = 150;
/// Generations of the multi-file transaction the reader test watches.
const GENERATIONS: u64 = 100;
/// Files rewritten by every generation.
const BATCH_FILES: usize = 8;

fn vp(s: &str) -> VPath {
    VPath::parse(s).unwrap()
}

fn say(line: String) {
    let mut out = std::io::stdout().lock();
    writeln!(out, "@@ {line}").unwrap();
    out.flush().unwrap();
}

fn env_usize(name: &str) -> usize {
    std::env::var(name).unwrap().parse().unwrap()
}

/// Content of writer `k`'s file `i`.
fn writer_content(k: usize, i: usize) -> Vec<u8> {
    format!("writer {k} file {i}\n{}\n", "x".repeat(i % 97)).into_bytes()
}

/// Content of file `j` in generation `g` of the reader test: every file of a
/// generation names it, and some span several chunks.
fn batch_content(g: u64, j: usize) -> Vec<u8> {
    let mut out = format!("generation {g} file {j}\n").into_bytes();
    let len = if j < 2 { 40 * 1024 } else { 100 + j * 37 };
    let mut s = g.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (j as u64 + 1);
    while out.len() < len {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        out.extend_from_slice(&s.to_le_bytes());
    }
    out
}

// ----- the children -----------------------------------------------------------

/// The child roles (does nothing in a normal test run).
#[test]
fn conc_child() {
    let Ok(db) = std::env::var(CHILD_ENV) else {
        return;
    };
    let role = std::env::var(ROLE_ENV).unwrap();
    let mut engine = Engine::open(&db).expect("child: open");
    match role.as_str() {
        "writer" => writer(&mut engine, env_usize(ID_ENV), env_usize(COUNT_ENV)),
        "batch" => batch_writer(&mut engine),
        "reader" => reader(&mut engine),
        "holder" => holder(&mut engine),
        other => panic!("unknown role {other}"),
    }
}

/// Autocommits its own files, and every tenth one increments `/counter` in an
/// explicit read-modify-write transaction, retrying on conflict.
fn writer(engine: &mut Engine, k: usize, count: usize) {
    let actor = Actor {
        author: format!("w{k}"),
        uid: 1000 + k as u32,
        gid: 1000,
    };
    let dir = format!("/w{k}");
    engine
        .autocommit("main", &actor, &format!("mkdir {dir}"), |tx| {
            tx.mkdir(&vp(&dir), true, 0o755)
        })
        .expect("child: mkdir");
    let counter = vp("/counter");
    let (mut increments, mut conflicts) = (0, 0);
    for i in 0..count {
        let path = format!("{dir}/f{i}");
        let body = writer_content(k, i);
        let (_, info) = engine
            .autocommit("main", &actor, &format!("write {path}"), |tx| {
                tx.write_bytes(&vp(&path), &body)
            })
            .expect("child: autocommit");
        say(format!("file {i} {}", info.expect("a change").id));
        if i % 10 != 0 {
            continue;
        }
        loop {
            let mut tx = engine.begin("main", &actor).unwrap();
            let n: u64 = match tx.stat(&counter).unwrap() {
                None => 0,
                Some(_) => String::from_utf8(tx.read_file(&counter).unwrap())
                    .unwrap()
                    .trim()
                    .parse()
                    .unwrap(),
            };
            tx.write_bytes(&counter, format!("{}\n", n + 1).as_bytes())
                .unwrap();
            // Widen the read-modify-write window so the writers do collide.
            std::thread::sleep(Duration::from_millis(2));
            match tx.commit("increment /counter", None) {
                Ok(info) => {
                    say(format!("inc {} {}", info.expect("a change").id, n + 1));
                    increments += 1;
                    break;
                }
                Err(Error::Conflict { .. }) => {
                    conflicts += 1;
                    assert!(conflicts < 10_000, "child: endless conflicts");
                }
                Err(e) => panic!("child: increment failed: {e}"),
            }
        }
    }
    say(format!("done {increments} {conflicts}"));
}

/// Rewrites the same files in multi-file transactions, one generation each.
fn batch_writer(engine: &mut Engine) {
    let actor = Actor::default();
    for g in 1..=GENERATIONS {
        let mut tx = engine.begin("main", &actor).unwrap();
        tx.mkdir(&vp("/batch"), true, 0o755).unwrap();
        for j in 0..BATCH_FILES {
            tx.write_bytes(&vp(&format!("/batch/f{j}")), &batch_content(g, j))
                .unwrap();
        }
        tx.config_set("batch.gen", &g.to_string()).unwrap();
        let info = tx.commit(&format!("generation {g}"), None).unwrap();
        say(format!("gen {g} {}", info.expect("a change").id));
    }
}

/// Views the head over and over while the batch writer commits: each view
/// shows one whole generation (or none), never a mix.
fn reader(engine: &mut Engine) {
    let started = Instant::now();
    let (mut views, mut last, mut seen) = (0u64, 0u64, Vec::new());
    while last < GENERATIONS {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "child: the writer never finished"
        );
        let head = engine.head().unwrap();
        let mut v = engine.view_at("main", head).unwrap();
        views += 1;
        let Some(gen) = v.config_get("batch.gen").unwrap() else {
            assert!(
                v.stat(&vp("/batch")).unwrap().is_none(),
                "T{head}: files without their generation"
            );
            continue;
        };
        let g: u64 = gen.parse().unwrap();
        assert!(
            g >= last,
            "T{head}: generation went back from {last} to {g}"
        );
        let names: Vec<String> = v
            .read_dir(&vp("/batch"))
            .unwrap()
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        let want: Vec<String> = (0..BATCH_FILES).map(|j| format!("f{j}")).collect();
        assert_eq!(names, want, "T{head}: files of generation {g}");
        for j in 0..BATCH_FILES {
            let got = v.read_file(&vp(&format!("/batch/f{j}"))).unwrap();
            assert!(
                got == batch_content(g, j),
                "T{head}: /batch/f{j} is not generation {g}: partial transaction seen ({:?})",
                String::from_utf8_lossy(&got[..got.len().min(30)])
            );
        }
        if g != last {
            seen.push(g);
            last = g;
        }
    }
    say(format!("views {views} generations {}", seen.len()));
}

/// Begins a transaction, writes, and keeps it open until stdin says go.
fn holder(engine: &mut Engine) {
    let actor = Actor {
        author: "holder".to_string(),
        uid: 0,
        gid: 0,
    };
    let mut tx = engine.begin("main", &actor).unwrap();
    tx.mkdir(&vp("/held"), false, 0o755).unwrap();
    tx.write_bytes(&vp("/held/a"), &batch_content(7, 0))
        .unwrap();
    tx.write_bytes(&vp("/held/b"), b"b\n").unwrap();
    tx.config_set("held", "yes").unwrap();
    say("ready".to_string());
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).unwrap();
    let info = tx.commit("held transaction", None).unwrap();
    say(format!("committed {}", info.expect("a change").id));
}

// ----- the parent -------------------------------------------------------------

/// A child process, killed if the parent panics.
struct Proc(Option<Child>);

impl Proc {
    fn spawn(db: &Path, role: &str, id: usize, count: usize) -> Proc {
        let child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", CHILD_TEST, "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, db)
            .env(ROLE_ENV, role)
            .env(ID_ENV, id.to_string())
            .env(COUNT_ENV, count.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn child");
        Proc(Some(child))
    }

    /// Wait for the child; panic with its stderr unless it succeeded. Returns
    /// its report lines (without the `@@ ` prefix).
    fn finish(&mut self, what: &str) -> Vec<String> {
        let out: Output = self.0.take().unwrap().wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{what} failed ({}):\n{stdout}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        report_lines(&stdout)
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The child's report lines. The harness may print `test conc_child ... `
/// without a newline just before the first one, so look inside lines.
fn report_line(line: &str) -> Option<&str> {
    line.find("@@ ").map(|i| line[i + 3..].trim_end())
}

fn report_lines(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(report_line)
        .map(str::to_string)
        .collect()
}

fn new_db() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("state.db");
    (dir, db)
}

fn open(db: &Path) -> Engine {
    Engine::open(db.to_str().unwrap()).unwrap()
}

fn integrity_ok(db: &Path) {
    let backend = SqliteBackend::open(db).unwrap();
    let ok: String = backend
        .connection()
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(ok, "ok", "integrity_check");
}

fn read_text(engine: &mut Engine, at: TxId, path: &str) -> Option<Vec<u8>> {
    let mut v = engine.view_at("main", at).unwrap();
    v.stat(&vp(path)).unwrap()?;
    Some(v.read_file(&vp(path)).unwrap())
}

/// `n` writer processes on one database. With `fresh`, they also race to
/// create it; otherwise the parent creates it with `/counter` at 0.
fn concurrent_writers(n: usize, fresh: bool) {
    if std::env::var_os(CHILD_ENV).is_some() {
        return;
    }
    let started = Instant::now();
    let (_dir, db) = new_db();
    let mut base_txs = 1; // T1: init
    if !fresh {
        let mut e = open(&db);
        e.autocommit("main", &Actor::default(), "init counter", |tx| {
            tx.write_bytes(&vp("/counter"), b"0\n")
        })
        .unwrap();
        base_txs += 1;
    }
    let mut children: Vec<Proc> = (0..n)
        .map(|k| Proc::spawn(&db, "writer", k, WRITES))
        .collect();
    let reports: Vec<Vec<String>> = children
        .iter_mut()
        .enumerate()
        .map(|(k, c)| c.finish(&format!("writer {k}")))
        .collect();
    let elapsed = started.elapsed();

    let mut e = open(&db);
    let head = e.head().unwrap();
    let mut incs: Vec<(TxId, u64)> = Vec::new();
    let (mut total_incs, mut total_conflicts) = (0u64, 0u64);
    let mut expected_txs = base_txs;
    for (k, lines) in reports.iter().enumerate() {
        let mut files = BTreeMap::new();
        let mut done = None;
        for l in lines {
            let w: Vec<&str> = l.split_whitespace().collect();
            match w[0] {
                "file" => {
                    files.insert(
                        w[1].parse::<usize>().unwrap(),
                        w[2].parse::<TxId>().unwrap(),
                    );
                }
                "inc" => incs.push((w[1].parse().unwrap(), w[2].parse().unwrap())),
                "done" => done = Some((w[1].parse::<u64>().unwrap(), w[2].parse::<u64>().unwrap())),
                _ => panic!("writer {k}: unexpected report {l:?}"),
            }
        }
        let (i, c) = done.unwrap_or_else(|| panic!("writer {k} did not finish"));
        assert_eq!(i, WRITES.div_ceil(10) as u64, "writer {k}: increments");
        total_incs += i;
        total_conflicts += c;
        expected_txs += 1 + WRITES + i as usize;
        assert_eq!(
            files.keys().copied().collect::<Vec<_>>(),
            (0..WRITES).collect::<Vec<_>>(),
            "writer {k}: files reported"
        );
        // Every reported file exists with its content, at the head and from
        // the transaction that wrote it on, and not before it.
        for (&i, &tx) in &files {
            let path = format!("/w{k}/f{i}");
            let want = writer_content(k, i);
            assert_eq!(e.tx_info(tx).unwrap().command, format!("write {path}"));
            assert_eq!(read_text(&mut e, head, &path), Some(want.clone()), "{path}");
            assert_eq!(read_text(&mut e, tx, &path), Some(want), "{path} at T{tx}");
            assert_eq!(
                read_text(&mut e, tx - 1, &path),
                None,
                "{path} before T{tx}"
            );
        }
    }
    // No lost update: the increments, in commit order, saw 0, 1, 2, ...
    incs.sort_unstable();
    let values: Vec<u64> = incs.iter().map(|i| i.1).collect();
    assert_eq!(
        values,
        (1..=total_incs).collect::<Vec<_>>(),
        "counter values"
    );
    for &(tx, v) in &incs {
        assert_eq!(
            read_text(&mut e, tx, "/counter"),
            Some(format!("{v}\n").into_bytes())
        );
    }
    assert_eq!(
        read_text(&mut e, head, "/counter"),
        Some(format!("{total_incs}\n").into_bytes()),
        "final counter"
    );
    let log = common::checked_log(&mut e);
    assert_eq!(log.len(), expected_txs, "every commit is one transaction");
    common::assert_chain_intact(&mut e, 1);
    integrity_ok(&db);
    eprintln!(
        "{n} writers ({}): {} transactions in {elapsed:.1?}, {total_incs} increments, \
         {total_conflicts} conflicts retried",
        if fresh {
            "fresh database"
        } else {
            "existing database"
        },
        log.len()
    );
}

#[test]
fn two_writer_processes_lose_no_update() {
    concurrent_writers(2, false);
}

#[test]
fn four_writer_processes_on_a_fresh_database_lose_no_update() {
    concurrent_writers(4, true);
}

#[test]
fn reader_process_never_sees_a_partial_transaction() {
    if std::env::var_os(CHILD_ENV).is_some() {
        return;
    }
    let started = Instant::now();
    let (_dir, db) = new_db();
    drop(open(&db));
    let mut reader = Proc::spawn(&db, "reader", 0, 0);
    let mut writer = Proc::spawn(&db, "batch", 0, 0);
    let written = writer.finish("batch writer");
    let read = reader.finish("reader");
    assert_eq!(written.len() as u64, GENERATIONS);
    let w: Vec<&str> = read[0].split_whitespace().collect();
    let (views, gens): (u64, u64) = (w[1].parse().unwrap(), w[3].parse().unwrap());
    assert!(
        gens >= 2,
        "the reader saw only {gens} generation(s): it did not overlap the writer"
    );
    // And afterwards, every generation's transaction shows it whole.
    let mut e = open(&db);
    for l in &written {
        let w: Vec<&str> = l.split_whitespace().collect();
        let (g, tx): (u64, TxId) = (w[1].parse().unwrap(), w[2].parse().unwrap());
        let mut v = e.view_at("main", tx).unwrap();
        assert_eq!(v.config_get("batch.gen").unwrap(), Some(g.to_string()));
        for j in 0..BATCH_FILES {
            assert!(v.read_file(&vp(&format!("/batch/f{j}"))).unwrap() == batch_content(g, j));
        }
    }
    common::checked_log(&mut e);
    common::assert_chain_intact(&mut e, 1);
    integrity_ok(&db);
    eprintln!(
        "reader: {views} views of the head saw {gens} of {GENERATIONS} generations whole, in {:.1?}",
        started.elapsed()
    );
}

#[test]
fn open_transaction_does_not_block_other_processes() {
    if std::env::var_os(CHILD_ENV).is_some() {
        return;
    }
    let (_dir, db) = new_db();
    drop(open(&db));
    let mut holder = Proc::spawn(&db, "holder", 0, 0);
    let child = holder.0.as_mut().unwrap();
    let stdin: ChildStdin = child.stdin.take().unwrap();
    // Read the holder's reports on a thread, so a stuck holder fails the test
    // instead of hanging it.
    let (send, reports) = std::sync::mpsc::channel::<String>();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(r) = report_line(&line) {
                if send.send(r.to_string()).is_err() {
                    break;
                }
            }
        }
    });
    let ready = reports
        .recv_timeout(Duration::from_secs(60))
        .expect("the holder never became ready");
    assert_eq!(ready, "ready");

    // The holder's transaction is open (written, not committed): this process
    // commits freely meanwhile.
    let mut e = open(&db);
    let actor = Actor::default();
    let mut slowest = Duration::ZERO;
    let mut mine = Vec::new();
    for i in 0..30 {
        let t = Instant::now();
        let (_, info) = e
            .autocommit("main", &actor, "write", |tx| {
                tx.mkdir(&vp("/p"), true, 0o755)?;
                tx.write_bytes(&vp(&format!("/p/f{i}")), format!("{i}\n").as_bytes())
            })
            .unwrap();
        let took = t.elapsed();
        assert!(
            took < Duration::from_millis(1000),
            "autocommit {i} took {took:?} while another process held a transaction open"
        );
        slowest = slowest.max(took);
        mine.push(info.unwrap().id);
    }
    let head = e.head().unwrap();
    assert!(
        read_text(&mut e, head, "/held/a").is_none(),
        "uncommitted writes are visible"
    );

    // Now let the holder commit: it touched nothing this process changed,
    // so it commits after all of them.
    drop(stdin);
    let committed = reports
        .recv_timeout(Duration::from_secs(60))
        .expect("the holder did not commit");
    let out = holder.finish("holder");
    assert!(out.is_empty(), "{out:?}");
    let held: TxId = committed
        .strip_prefix("committed ")
        .unwrap_or_else(|| panic!("holder: {committed}"))
        .parse()
        .unwrap();
    assert!(mine.iter().all(|&t| t < held), "T{held} vs {mine:?}");
    let head = e.head().unwrap();
    assert_eq!(head, held);
    assert_eq!(
        read_text(&mut e, head, "/held/a"),
        Some(batch_content(7, 0))
    );
    assert_eq!(read_text(&mut e, head, "/p/f29"), Some(b"29\n".to_vec()));
    common::checked_log(&mut e);
    common::assert_chain_intact(&mut e, 1);
    integrity_ok(&db);
    eprintln!(
        "holder: 30 autocommits while another process held a transaction open, \
         slowest {slowest:?}; the held one then committed as T{held}"
    );
}
