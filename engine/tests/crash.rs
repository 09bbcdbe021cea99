//! Durability under `kill -9`: a process killed at any instant, even in the
//! middle of a multi-file transaction, loses no committed (acknowledged)
//! transaction and exposes no partial one.
//!
//! The test binary re-executes itself (the sled pattern): with
//! `DBOS_CRASH_CHILD=<dir>` set, the `crash_child` test becomes a writer that
//! commits multi-file transactions forever, acknowledging each committed
//! transaction id in `<dir>/acked.txt` (fsynced) once `commit` returned. The
//! parent kills it with SIGKILL after a random 5–150 ms, reopens the database
//! and checks it, then lets the next child resume on the same database.
//!
//! Rounds: 30 by default, `DBOS_CRASH_ROUNDS=<n>` for long runs.

use dbos_engine::backend::sqlite::SqliteBackend;
use dbos_engine::chain::{tx_hash, ChainWrite};
use dbos_engine::{Actor, Engine, Hash, LogEntry, LogFilter, TxId, TxInfo, Txn, VPath};
use rand::Rng;
use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::FileExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const CHILD_ENV: &str = "DBOS_CRASH_CHILD";
const ROUNDS_ENV: &str = "DBOS_CRASH_ROUNDS";
const CHILD_TEST: &str = "crash_child";
const CONFIG_KEY: &str = "crash.last";

fn vp(s: &str) -> VPath {
    VPath::parse(s).unwrap()
}

// ----- what iteration `i` writes: a pure function of `i` --------------------

fn splitmix(s: &mut u64) -> u64 {
    *s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *s;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn random_bytes(s: &mut u64, len: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        v.extend_from_slice(&splitmix(s).to_le_bytes());
    }
    v.truncate(len);
    v
}

/// Everything iteration `iter` commits, derived from `iter` alone so that the
/// parent can check the exact bytes without any side channel.
struct Plan {
    iter: u64,
    /// Shared by every file of the transaction: iteration, count, checksum.
    marker: String,
    /// File contents, `f00`, `f01`, ... under `/crash/<iter>`.
    files: Vec<Vec<u8>>,
    /// Value of the config key `crash.last` after this iteration.
    config: String,
    /// Committed through `Engine::autocommit` rather than begin/commit.
    autocommit: bool,
}

impl Plan {
    fn new(iter: u64) -> Plan {
        let mut s = iter ^ 0xD1B5_4A32_D192_ED03;
        let n = 2 + (splitmix(&mut s) % 19) as usize; // 2..=20 files
        let bodies: Vec<Vec<u8>> = (0..n)
            .map(|_| {
                let len = match splitmix(&mut s) % 8 {
                    // Multi-chunk: ~40 KB of incompressible bytes.
                    0 | 1 => 40 * 1024 + (splitmix(&mut s) % 8192) as usize,
                    2 => (splitmix(&mut s) % 16) as usize,
                    _ => 64 + (splitmix(&mut s) % 4000) as usize,
                };
                random_bytes(&mut s, len)
            })
            .collect();
        let sum = bodies
            .iter()
            .flatten()
            .fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
                (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
            });
        let marker = format!("iter={iter} files={n} sum={sum:016x}");
        let files = bodies
            .into_iter()
            .enumerate()
            .map(|(j, b)| {
                let mut f = format!("{marker} file={j}\n").into_bytes();
                f.extend_from_slice(&b);
                f
            })
            .collect();
        Plan {
            iter,
            config: format!("{iter}:{sum:016x}"),
            marker,
            files,
            autocommit: splitmix(&mut s) % 3 == 0,
        }
    }

    fn dir(&self) -> String {
        format!("/crash/{}", self.iter)
    }

    fn file(&self, j: usize) -> String {
        format!("/crash/{}/f{j:02}", self.iter)
    }

    fn command(&self) -> String {
        format!("crash {}", self.iter)
    }

    fn apply(&self, tx: &mut Txn<'_>) -> dbos_engine::Result<()> {
        tx.mkdir(&vp("/crash"), true, 0o755)?;
        tx.mkdir(&vp(&self.dir()), false, 0o755)?;
        for (j, f) in self.files.iter().enumerate() {
            tx.write_bytes(&vp(&self.file(j)), f)?;
        }
        tx.config_set(CONFIG_KEY, &self.config)?;
        tx.log(LogEntry {
            time_us: 1_700_000_000_000_000 + self.iter as i64,
            source: "crash".to_string(),
            severity: 6,
            message: self.marker.clone(),
            process_id: None,
        })
    }
}

// ----- the child: commits forever, acknowledging each commit ----------------

/// Where the child is, kept in `phase.txt` (one unsynced `pwrite`, which
/// survives SIGKILL in the page cache) so the parent can tell where each kill
/// fell.
struct Phase(fs::File);

impl Phase {
    fn set(&self, what: &str) {
        let mut buf = [b' '; 32];
        buf[..what.len()].copy_from_slice(what.as_bytes());
        buf[31] = b'\n';
        self.0.write_all_at(&buf, 0).expect("child: phase");
    }
}

/// The writer run in a child process (does nothing in a normal test run).
#[test]
fn crash_child() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let dir = PathBuf::from(dir);
    let phase = Phase(
        OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(false)
            .open(dir.join("phase.txt"))
            .expect("child: open phase.txt"),
    );
    phase.set("open");
    let db = dir.join("state.db");
    let mut engine = Engine::open(db.to_str().unwrap()).expect("child: open");
    let actor = Actor {
        author: "crash-child".to_string(),
        uid: 1000,
        gid: 1000,
    };
    // Iterations are numbered by commit: resume after the last committed one.
    let head = engine.head().unwrap();
    let last = engine
        .view_at("main", head)
        .unwrap()
        .config_get(CONFIG_KEY)
        .unwrap();
    let mut iter = match last {
        Some(v) => v.split(':').next().unwrap().parse::<u64>().unwrap() + 1,
        None => 1,
    };
    let mut acked = OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("acked.txt"))
        .expect("child: open acked.txt");
    loop {
        phase.set(&format!("prepare {iter}"));
        let plan = Plan::new(iter);
        let info = if plan.autocommit {
            phase.set(&format!("auto {iter}"));
            engine
                .autocommit("main", &actor, &plan.command(), |tx| plan.apply(tx))
                .expect("child: autocommit")
                .1
        } else {
            phase.set(&format!("build {iter}"));
            let mut tx = engine.begin("main", &actor).expect("child: begin");
            plan.apply(&mut tx).expect("child: writes");
            phase.set(&format!("commit {iter}"));
            tx.commit(&plan.command(), Some(plan.marker.clone()))
                .expect("child: commit")
        }
        .expect("child: the transaction changed something");
        // Acknowledge only after commit returned: one write, then fsync.
        phase.set(&format!("ack {iter}"));
        acked
            .write_all(format!("{} {}\n", info.id, iter).as_bytes())
            .expect("child: write ack");
        acked.sync_data().expect("child: fsync ack");
        iter += 1;
    }
}

// ----- the parent -------------------------------------------------------------

/// Kills the child if the parent panics.
struct Reaper(Child);

impl Drop for Reaper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Acknowledged (transaction id, iteration) pairs: complete lines only.
fn read_acked(path: &Path) -> Vec<(TxId, u64)> {
    let text = fs::read_to_string(path).unwrap_or_default();
    let complete = match text.rfind('\n') {
        Some(i) => &text[..=i],
        None => "",
    };
    complete
        .lines()
        .map(|l| {
            let (t, i) = l.split_once(' ').unwrap_or_else(|| panic!("bad ack {l:?}"));
            (t.parse().unwrap(), i.parse().unwrap())
        })
        .collect()
}

/// Drop a torn last line (the child may die inside the write), so the next
/// child appends after a complete line.
fn trim_torn_ack(path: &Path) {
    let Ok(bytes) = fs::read(path) else { return };
    let keep = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    if keep != bytes.len() {
        let f = OpenOptions::new().write(true).open(path).unwrap();
        f.set_len(keep as u64).unwrap();
        f.sync_all().unwrap();
    }
}

/// Every transaction, oldest first.
fn all_transactions(engine: &mut Engine) -> Vec<TxInfo> {
    let mut log = engine.log("main", None, 10_000_000).unwrap();
    log.reverse();
    log
}

/// Recompute the hash chain from the stored rows: any torn or partial
/// transaction (a row missing, extra or altered) breaks it.
fn verify_chain(engine: &mut Engine, log: &[TxInfo]) {
    let mut prev: Hash = [0u8; 32];
    for info in log {
        let writes = engine.backend().tx_writes(info.id).unwrap();
        let logs: Vec<LogEntry> = engine
            .view_at("main", info.id)
            .unwrap()
            .logs(&LogFilter {
                after_tx: Some(info.id - 1),
                ..LogFilter::default()
            })
            .unwrap()
            .into_iter()
            .map(|l| {
                assert_eq!(l.tx, info.id);
                l.entry
            })
            .collect();
        let chain: Vec<ChainWrite<'_>> = writes
            .iter()
            .map(|w| ChainWrite {
                space: w.space,
                path: &w.path,
                entry: w.entry.as_ref(),
            })
            .collect();
        let h = tx_hash(&prev, info, &chain, &logs);
        assert!(
            h == info.hash,
            "T{}: hash chain broken (stored rows differ from what was committed)",
            info.id
        );
        prev = info.hash;
    }
}

/// Full check of the transaction of iteration `plan.iter`: right after it
/// every file of the iteration is there with its exact bytes, right before it
/// none is, and it changed exactly what the iteration wrote.
fn check_tx(engine: &mut Engine, id: TxId, plan: &Plan, prev_config: Option<&str>) {
    let info = engine.tx_info(id).unwrap();
    assert_eq!(info.command, plan.command(), "T{id}");
    assert_eq!(info.author, "crash-child", "T{id}");
    {
        let mut v = engine.view_at("main", id).unwrap();
        let names: Vec<String> = v
            .read_dir(&vp(&plan.dir()))
            .unwrap_or_else(|e| panic!("T{id}: {} missing: {e}", plan.dir()))
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        let want: Vec<String> = (0..plan.files.len()).map(|j| format!("f{j:02}")).collect();
        assert_eq!(names, want, "T{id}: files of iteration {}", plan.iter);
        for (j, f) in plan.files.iter().enumerate() {
            let got = v.read_file(&vp(&plan.file(j))).unwrap();
            assert!(
                got == *f,
                "T{id}: {} differs ({} bytes, want {})",
                plan.file(j),
                got.len(),
                f.len()
            );
        }
        assert_eq!(
            v.config_get(CONFIG_KEY).unwrap().as_deref(),
            Some(plan.config.as_str()),
            "T{id}: config"
        );
        let logs = v
            .logs(&LogFilter {
                after_tx: Some(id - 1),
                ..LogFilter::default()
            })
            .unwrap();
        assert_eq!(logs.len(), 1, "T{id}: log rows");
        assert_eq!(logs[0].entry.message, plan.marker, "T{id}: log row");
    }
    {
        let mut v = engine.view_at("main", id - 1).unwrap();
        assert!(
            v.stat(&vp(&plan.dir())).unwrap().is_none(),
            "T{}: {} visible before its transaction",
            id - 1,
            plan.dir()
        );
        for j in 0..plan.files.len() {
            assert!(v.stat(&vp(&plan.file(j))).unwrap().is_none());
        }
        assert_eq!(
            v.config_get(CONFIG_KEY).unwrap().as_deref(),
            prev_config,
            "T{}: config before iteration {}",
            id - 1,
            plan.iter
        );
    }
    let changed: BTreeSet<String> = engine
        .changes(id)
        .unwrap()
        .into_iter()
        .map(|c| c.path)
        .collect();
    let mut want: BTreeSet<String> = (0..plan.files.len()).map(|j| plan.file(j)).collect();
    want.insert(plan.dir());
    want.insert(CONFIG_KEY.to_string());
    if plan.iter == 1 {
        want.insert("/crash".to_string());
    }
    assert_eq!(changed, want, "T{id}: changed keys");
}

#[derive(Default)]
struct Stats {
    rounds: usize,
    committed: usize,
    acked: usize,
    /// Transactions committed but not acknowledged: the kill fell between
    /// commit and ack (at most one per round, the last one).
    unacked: BTreeSet<TxId>,
    /// Rounds in which the child committed nothing before it died.
    nothing_committed: usize,
    /// Where the kills fell, by the child's last recorded phase.
    kill_points: BTreeMap<&'static str, usize>,
}

/// Where the child was when it died, from `phase.txt`.
fn kill_point(dir: &Path, committed: usize) -> &'static str {
    let phase = fs::read_to_string(dir.join("phase.txt")).unwrap_or_default();
    let mut words = phase.split_whitespace();
    let what = words.next().unwrap_or("");
    let durable = words
        .next()
        .map(|i| i.parse::<usize>().unwrap() <= committed)
        .unwrap_or(false);
    match (what, durable) {
        ("", _) => "starting up",
        ("open", _) => "opening the database",
        ("prepare", _) => "preparing the next iteration's data",
        ("build", _) => "building a transaction",
        ("commit", false) => "inside commit (rolled back)",
        ("commit", true) => "inside commit (already durable)",
        ("auto", false) => "inside autocommit (rolled back)",
        ("auto", true) => "inside autocommit (already durable)",
        ("ack", _) => "after commit, acknowledging",
        _ => panic!("unknown phase {phase:?}"),
    }
}

/// Check the database after a kill. `checked` is how many transactions were
/// fully checked in earlier rounds (they are re-checked by the hash chain).
fn verify(dir: &Path, checked: &mut usize, full: bool, stats: &mut Stats) {
    let db = dir.join("state.db");
    let acked = read_acked(&dir.join("acked.txt"));
    if !db.exists() {
        assert!(acked.is_empty(), "acknowledged commits but no database");
        stats.nothing_committed += 1;
        return;
    }
    let mut engine = Engine::open(db.to_str().unwrap()).expect("reopen after kill");
    let head = engine.head().unwrap();
    let log = all_transactions(&mut engine);
    // Ids are contiguous: T1 is the bootstrap, then one per iteration, in order.
    let ids: Vec<TxId> = log.iter().map(|t| t.id).collect();
    assert_eq!(ids, (1..=head).collect::<Vec<_>>(), "transaction ids");
    assert_eq!(log[0].command, "init");
    for w in log.windows(2) {
        assert!(w[0].time_us <= w[1].time_us, "commit times go backwards");
    }
    // (a) every acknowledged transaction exists and is the iteration acked.
    for w in acked.windows(2) {
        assert!(w[0].0 < w[1].0, "acks out of order: {w:?}");
    }
    for &(id, iter) in &acked {
        assert!(id <= head, "acknowledged T{id} (iteration {iter}) was lost");
        assert_eq!(engine.tx_info(id).unwrap().command, format!("crash {iter}"));
    }
    let acked_ids: BTreeSet<TxId> = acked.iter().map(|a| a.0).collect();
    // Only the last transaction may be committed but not acknowledged (the
    // kill fell between commit and ack); earlier ones were all acknowledged.
    let unacked: Vec<TxId> = ids[1..]
        .iter()
        .copied()
        .filter(|t| !acked_ids.contains(t) && !stats.unacked.contains(t))
        .collect();
    assert!(
        unacked.is_empty() || unacked == [head],
        "committed but never acknowledged: {unacked:?} (head T{head})"
    );
    stats.unacked.extend(unacked);
    if log.len() <= (*checked).max(1) {
        stats.nothing_committed += 1;
    }
    // (b) every transaction is whole: new ones (or all, at the end) checked
    // byte for byte at their own moment and the one before.
    let from = if full { 1 } else { (*checked).max(1) };
    for info in &log[from..] {
        let iter = info.id - 1;
        let plan = Plan::new(iter);
        let prev = (iter > 1).then(|| Plan::new(iter - 1).config);
        check_tx(&mut engine, info.id, &plan, prev.as_deref());
    }
    // Nothing else is visible at the head: exactly the committed iterations.
    let mut at_head = engine.view_at("main", head).unwrap();
    if head > 1 {
        let mut dirs: Vec<u64> = at_head
            .read_dir(&vp("/crash"))
            .unwrap()
            .into_iter()
            .map(|(n, _)| n.parse().unwrap())
            .collect();
        dirs.sort_unstable();
        assert_eq!(dirs, (1..head).collect::<Vec<_>>(), "iterations at head");
        assert_eq!(at_head.read_dir(&vp("/")).unwrap().len(), 1);
    } else {
        assert!(at_head.read_dir(&vp("/")).unwrap().is_empty());
    }
    verify_chain(&mut engine, &log);
    // (c) the SQLite file itself is sound.
    let backend = SqliteBackend::open(&db).unwrap();
    let ok: String = backend
        .connection()
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(ok, "ok", "integrity_check");
    stats.committed = log.len() - 1;
    stats.acked = acked.len();
    *checked = log.len();
}

#[test]
fn kill_9_loses_no_commit_and_exposes_no_partial_one() {
    if std::env::var_os(CHILD_ENV).is_some() {
        return;
    }
    let rounds: usize = std::env::var(ROUNDS_ENV)
        .ok()
        .map(|v| v.parse().expect("DBOS_CRASH_ROUNDS must be a number"))
        .unwrap_or(30);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    let exe = std::env::current_exe().unwrap();
    let mut rng = rand::thread_rng();
    let mut stats = Stats::default();
    let mut checked = 0usize;
    let started = Instant::now();
    for round in 0..rounds {
        trim_torn_ack(&dir.join("acked.txt"));
        fs::write(dir.join("phase.txt"), "").unwrap();
        let out = OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("child.log"))
            .unwrap();
        let child = Command::new(&exe)
            .args(["--exact", CHILD_TEST, "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, &dir)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("spawn child");
        let mut child = Reaper(child);
        let delay = rng.gen_range(5..=150);
        std::thread::sleep(Duration::from_millis(delay));
        if let Some(status) = child.0.try_wait().unwrap() {
            panic!(
                "round {round}: the child exited by itself ({status}):\n{}",
                fs::read_to_string(dir.join("child.log")).unwrap_or_default()
            );
        }
        child.0.kill().unwrap(); // SIGKILL
        let status = child.0.wait().unwrap();
        assert_eq!(
            status.signal(),
            Some(9),
            "round {round}: child was not killed by SIGKILL ({status}):\n{}",
            fs::read_to_string(dir.join("child.log")).unwrap_or_default()
        );
        let before = checked;
        verify(&dir, &mut checked, round + 1 == rounds, &mut stats);
        stats.rounds += 1;
        let point = kill_point(&dir, stats.committed);
        *stats.kill_points.entry(point).or_default() += 1;
        eprintln!(
            "round {round}: killed after {delay} ms {point}; {} new transactions, {} in all",
            checked.saturating_sub(before.max(1)),
            stats.committed
        );
    }
    eprintln!(
        "crash: survived {} kill -9 points in {:.1?}: {} transactions committed, {} acknowledged, \
         {} kills between commit and ack, {} rounds committed nothing; all complete, none partial",
        stats.rounds,
        started.elapsed(),
        stats.committed,
        stats.acked,
        stats.unacked.len(),
        stats.nothing_committed
    );
    eprintln!("crash: kill points: {:?}", stats.kill_points);
    assert!(
        stats.committed > 0,
        "no transaction was ever committed: the test checked nothing"
    );
}
