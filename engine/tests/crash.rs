//! Durability under `kill -9`: a process killed at any instant, even in the
//! middle of a multi-file transaction, loses no committed (acknowledged)
//! transaction and exposes no partial one.
//!
//! The test binary re-executes itself (the sled pattern): with
//! `DBOS_CRASH_CHILD=<dir>` set, the `crash_child` test becomes a writer that
//! commits multi-file transactions forever, acknowledging each committed
//! transaction id in `<dir>/acked-<lane>.txt` (fsynced) once `commit`
//! returned. The parent kills it with SIGKILL after a random 5–150 ms, reopens
//! the database and checks it, then lets the next child resume on the same
//! database. A second test does the same while another writer process keeps
//! committing through every kill.
//!
//! Rounds: 30 by default, `DBOS_CRASH_ROUNDS=<n>` for long runs.

mod common;

use dbos_engine::backend::sqlite::SqliteBackend;
use dbos_engine::{Actor, Engine, LogEntry, LogFilter, TxId, TxInfo, Txn, VPath};
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
const LANE_ENV: &str = "DBOS_CRASH_LANE";
const PAUSE_ENV: &str = "DBOS_CRASH_PAUSE_MS";
const ROUNDS_ENV: &str = "DBOS_CRASH_ROUNDS";
const CHILD_TEST: &str = "crash_child";

fn vp(s: &str) -> VPath {
    VPath::parse(s).unwrap()
}

// ----- what iteration `i` of a lane writes: a pure function of both ---------

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

/// Everything iteration `iter` of a writer (its `lane`) commits, derived from
/// the two alone so that the parent can check the exact bytes without any
/// side channel. Iterations are numbered by commit: 1, 2, 3... per lane.
struct Plan {
    lane: String,
    iter: u64,
    /// Shared by every file of the transaction: lane, iteration, count and
    /// checksum of all of them.
    marker: String,
    /// File contents, `f00`, `f01`, ... under `/crash/<lane>.<iter>`.
    files: Vec<Vec<u8>>,
    /// Value of the config key `crash.<lane>` after this iteration.
    config: String,
    /// Committed through `Engine::autocommit` rather than begin/commit.
    autocommit: bool,
}

impl Plan {
    fn new(lane: &str, iter: u64) -> Plan {
        let mut s = iter ^ 0xD1B5_4A32_D192_ED03;
        for b in lane.bytes() {
            s = splitmix(&mut s) ^ u64::from(b);
        }
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
        let mut sum = 0xcbf2_9ce4_8422_2325u64;
        for b in &bodies {
            for chunk in b.chunks(8) {
                let mut w = [0u8; 8];
                w[..chunk.len()].copy_from_slice(chunk);
                sum = (sum ^ u64::from_le_bytes(w)).wrapping_mul(0x0100_0000_01b3);
            }
        }
        let marker = format!("lane={lane} iter={iter} files={n} sum={sum:016x}");
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
            lane: lane.to_string(),
            iter,
            config: format!("{iter}:{sum:016x}"),
            marker,
            files,
            autocommit: matches!(splitmix(&mut s) % 3, 0),
        }
    }

    fn config_key(lane: &str) -> String {
        format!("crash.{lane}")
    }

    fn dir(&self) -> String {
        format!("/crash/{}.{}", self.lane, self.iter)
    }

    fn file(&self, j: usize) -> String {
        format!("{}/f{j:02}", self.dir())
    }

    fn command(&self) -> String {
        format!("crash {} {}", self.lane, self.iter)
    }

    fn apply(&self, tx: &mut Txn<'_>) -> dbos_engine::Result<()> {
        tx.mkdir(&vp("/crash"), true, 0o755)?;
        tx.mkdir(&vp(&self.dir()), false, 0o755)?;
        for (j, f) in self.files.iter().enumerate() {
            tx.write_bytes(&vp(&self.file(j)), f)?;
        }
        tx.config_set(&Plan::config_key(&self.lane), &self.config)?;
        tx.log(LogEntry {
            time_us: 1_700_000_000_000_000 + self.iter as i64,
            source: "crash".to_string(),
            severity: 6,
            message: self.marker.clone(),
            process_id: None,
        })
    }
}

/// The iteration a committed transaction's command names.
fn parse_command(command: &str) -> Option<(&str, u64)> {
    let mut w = command.strip_prefix("crash ")?.split(' ');
    let lane = w.next()?;
    let iter = w.next()?.parse().ok()?;
    Some((lane, iter))
}

// ----- the child: commits forever, acknowledging each commit ----------------

/// Where the child is, kept in `phase-<lane>.txt` (one unsynced `pwrite`,
/// which survives SIGKILL in the page cache) so the parent can tell where
/// each kill fell.
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
    let lane = std::env::var(LANE_ENV).unwrap();
    // A pause between iterations (the steady writer's), so that the parent's
    // checks keep up with it however long the run.
    let pause = Duration::from_millis(
        std::env::var(PAUSE_ENV)
            .ok()
            .map_or(0, |v| v.parse().unwrap()),
    );
    let dir = PathBuf::from(dir);
    let phase = Phase(
        OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(false)
            .open(dir.join(format!("phase-{lane}.txt")))
            .expect("child: open phase file"),
    );
    phase.set("open");
    let db = dir.join("state.db");
    let mut engine = Engine::open(db.to_str().unwrap()).expect("child: open");
    let actor = Actor {
        author: format!("crash-{lane}"),
        uid: 1000,
        gid: 1000,
    };
    // Resume after the last committed iteration of this lane.
    let head = engine.head().unwrap();
    let last = engine
        .view_at("main", head)
        .unwrap()
        .config_get(&Plan::config_key(&lane))
        .unwrap();
    let mut iter = match last {
        Some(v) => v.split(':').next().unwrap().parse::<u64>().unwrap() + 1,
        None => 1,
    };
    let mut acked = OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(format!("acked-{lane}.txt")))
        .expect("child: open ack file");
    loop {
        phase.set(&format!("prepare {iter}"));
        let plan = Plan::new(&lane, iter);
        let info = if plan.autocommit {
            phase.set(&format!("auto {iter}"));
            engine
                .autocommit("main", &actor, &plan.command(), |tx| plan.apply(tx))
                .expect("child: autocommit")
                .1
        } else {
            // Like autocommit, start over on a conflict with the other lane
            // (both may create /crash) or a busy lock.
            let mut attempt = 0;
            loop {
                phase.set(&format!("build {iter}"));
                let mut tx = engine.begin("main", &actor).expect("child: begin");
                plan.apply(&mut tx).expect("child: writes");
                phase.set(&format!("commit {iter}"));
                match tx.commit(&plan.command(), Some(plan.marker.clone())) {
                    Err(e) if e.is_retryable() && attempt < 20 => attempt += 1,
                    other => break other.expect("child: commit"),
                }
            }
        }
        .expect("child: the transaction changed something");
        // Acknowledge only after commit returned: one write, then fsync.
        phase.set(&format!("ack {iter}"));
        acked
            .write_all(format!("{} {}\n", info.id, iter).as_bytes())
            .expect("child: write ack");
        acked.sync_data().expect("child: fsync ack");
        iter += 1;
        if !pause.is_zero() {
            phase.set(&format!("pause {iter}"));
            std::thread::sleep(pause);
        }
    }
}

// ----- the parent -------------------------------------------------------------

/// A writer child, killed if the parent panics.
struct Writer {
    child: Child,
    lane: &'static str,
}

impl Writer {
    fn spawn(dir: &Path, lane: &'static str, pause_ms: u64) -> Writer {
        trim_torn_ack(&ack_file(dir, lane));
        fs::write(dir.join(format!("phase-{lane}.txt")), "").unwrap();
        let out = OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join(format!("child-{lane}.log")))
            .unwrap();
        let child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", CHILD_TEST, "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, dir)
            .env(LANE_ENV, lane)
            .env(PAUSE_ENV, pause_ms.to_string())
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("spawn child");
        Writer { child, lane }
    }

    fn child_log(&self, dir: &Path) -> String {
        fs::read_to_string(dir.join(format!("child-{}.log", self.lane))).unwrap_or_default()
    }

    /// Panic (with the child's output) if the child has exited by itself.
    fn assert_alive(&mut self, dir: &Path) {
        if let Some(status) = self.child.try_wait().unwrap() {
            panic!(
                "writer {} exited by itself ({status}):\n{}",
                self.lane,
                self.child_log(dir)
            );
        }
    }

    /// SIGKILL the child and reap it.
    fn kill_9(&mut self, dir: &Path) {
        self.assert_alive(dir);
        self.child.kill().unwrap(); // SIGKILL on Unix
        let status = self.child.wait().unwrap();
        assert_eq!(
            status.signal(),
            Some(9),
            "writer {} was not killed by SIGKILL ({status}):\n{}",
            self.lane,
            self.child_log(dir)
        );
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn ack_file(dir: &Path, lane: &str) -> PathBuf {
    dir.join(format!("acked-{lane}.txt"))
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

/// Full check of one transaction: right after it every file of its
/// iteration is there with its exact bytes, right before it none is, and it
/// changed exactly what the iteration wrote.
fn check_tx(engine: &mut Engine, info: &TxInfo, plan: &Plan, prev_config: Option<&str>) {
    let id = info.id;
    let key = Plan::config_key(&plan.lane);
    assert_eq!(info.author, format!("crash-{}", plan.lane), "T{id}");
    {
        let mut v = engine.view_at("main", id).unwrap();
        let names: Vec<String> = v
            .read_dir(&vp(&plan.dir()))
            .unwrap_or_else(|e| panic!("T{id}: {} missing: {e}", plan.dir()))
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        let want: Vec<String> = (0..plan.files.len()).map(|j| format!("f{j:02}")).collect();
        assert_eq!(names, want, "T{id}: files of {}", plan.marker);
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
            v.config_get(&key).unwrap().as_deref(),
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
    let crash_dir_existed = {
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
            v.config_get(&key).unwrap().as_deref(),
            prev_config,
            "T{}: config before {}",
            id - 1,
            plan.marker
        );
        v.stat(&vp("/crash")).unwrap().is_some()
    };
    let changed: BTreeSet<String> = engine
        .changes(id)
        .unwrap()
        .into_iter()
        .map(|c| c.path)
        .collect();
    let mut want: BTreeSet<String> = (0..plan.files.len()).map(|j| plan.file(j)).collect();
    want.insert(plan.dir());
    want.insert(key);
    if !crash_dir_existed {
        want.insert("/crash".to_string());
    }
    assert_eq!(changed, want, "T{id}: changed keys");
}

/// What the parent knows across rounds.
#[derive(Default)]
struct Checker {
    /// Transactions (a prefix of the log) already checked byte for byte.
    checked: usize,
    /// Per lane: committed iterations so far.
    committed: BTreeMap<String, u64>,
    /// Per lane: acknowledged transactions so far.
    acked: BTreeMap<String, usize>,
    /// Transactions committed but never acknowledged: the kill fell between
    /// commit and ack (at most one per kill, the lane's last one).
    unacked: BTreeSet<TxId>,
    /// Where the kills fell, by the child's last recorded phase.
    kill_points: BTreeMap<&'static str, usize>,
}

impl Checker {
    fn total(&self) -> u64 {
        self.committed.values().sum()
    }

    /// Check the database. `lanes` are the writers' lanes; those in `live`
    /// may still be committing while this runs. With `full`, every
    /// transaction is checked byte for byte again, not only the new ones.
    fn verify(&mut self, dir: &Path, lanes: &[&str], live: &[&str], full: bool) {
        let db = dir.join("state.db");
        // Acks first: whatever is acknowledged now was committed before the
        // head is read below.
        let acked: BTreeMap<&str, Vec<(TxId, u64)>> = lanes
            .iter()
            .map(|&l| (l, read_acked(&ack_file(dir, l))))
            .collect();
        if !db.exists() {
            assert!(acked.values().all(Vec::is_empty), "acks but no database");
            return;
        }
        let mut engine = Engine::open(db.to_str().unwrap()).expect("reopen after kill");
        let mut log = engine.log("main", None, 10_000_000).unwrap();
        log.reverse();
        let head = log.last().map_or(0, |t| t.id);
        // Ids are contiguous (no other writer, and a transaction that died
        // before its commit leaves no id behind); times never go back.
        let ids: Vec<TxId> = log.iter().map(|t| t.id).collect();
        assert_eq!(ids, (1..=head).collect::<Vec<_>>(), "transaction ids");
        assert_eq!(log[0].command, "init");
        for w in log.windows(2) {
            assert!(w[0].time_us <= w[1].time_us, "commit times go back");
        }
        // Each lane's iterations are 1, 2, 3... in commit order: a number is
        // only used up by a commit.
        let mut by_lane: BTreeMap<String, Vec<TxId>> = BTreeMap::new();
        let mut lane_of: BTreeMap<TxId, (String, u64)> = BTreeMap::new();
        for info in &log[1..] {
            let (lane, iter) = parse_command(&info.command)
                .unwrap_or_else(|| panic!("T{}: stray transaction {:?}", info.id, info.command));
            assert!(lanes.contains(&lane), "T{}: unknown lane", info.id);
            let its = by_lane.entry(lane.to_string()).or_default();
            its.push(info.id);
            assert_eq!(
                its.len() as u64,
                iter,
                "T{}: iteration of lane {lane}",
                info.id
            );
            lane_of.insert(info.id, (lane.to_string(), iter));
        }
        // (a) every acknowledged transaction exists and is what was acked.
        for (&lane, acks) in &acked {
            for w in acks.windows(2) {
                assert!(w[0].0 < w[1].0, "acks out of order: {w:?}");
            }
            for &(id, iter) in acks {
                assert!(id <= head, "acknowledged T{id} ({lane} {iter}) was lost");
                assert_eq!(lane_of[&id], (lane.to_string(), iter), "T{id}");
            }
            let ids: BTreeSet<TxId> = acks.iter().map(|a| a.0).collect();
            let mine = by_lane.get(lane).cloned().unwrap_or_default();
            if !live.contains(&lane) {
                let unacked: Vec<TxId> = mine
                    .iter()
                    .copied()
                    .filter(|t| !ids.contains(t) && !self.unacked.contains(t))
                    .collect();
                assert!(
                    unacked.is_empty() || unacked == [*mine.last().unwrap()],
                    "{lane}: committed but never acknowledged: {unacked:?}"
                );
                self.unacked.extend(unacked);
            }
            self.acked.insert(lane.to_string(), acks.len());
            self.committed.insert(lane.to_string(), mine.len() as u64);
        }
        // (b) every transaction is whole: the new ones (or all, with `full`)
        // byte for byte at their own moment and the one before.
        let from = if full { 1 } else { self.checked.max(1) };
        for info in &log[from..] {
            let (lane, iter) = &lane_of[&info.id];
            let plan = Plan::new(lane, *iter);
            let prev = (*iter > 1).then(|| Plan::new(lane, iter - 1).config);
            check_tx(&mut engine, info, &plan, prev.as_deref());
        }
        // Nothing else is visible: exactly the committed iterations.
        let mut at_head = engine.view_at("main", head).unwrap();
        let mut want: Vec<String> = lane_of.values().map(|(l, i)| format!("{l}.{i}")).collect();
        want.sort();
        let got: Vec<String> = if head > 1 {
            assert_eq!(at_head.read_dir(&vp("/")).unwrap().len(), 1);
            at_head
                .read_dir(&vp("/crash"))
                .unwrap()
                .into_iter()
                .map(|(n, _)| n)
                .collect()
        } else {
            assert!(at_head.read_dir(&vp("/")).unwrap().is_empty());
            Vec::new()
        };
        assert_eq!(got, want, "iterations visible at T{head}");
        // The chain from the last transaction verified before (or from the
        // start, with `full`), so that long runs stay linear.
        let from = if full {
            0
        } else {
            self.checked.saturating_sub(1)
        };
        common::assert_chain_intact(&mut engine, from as TxId + 1);
        // (c) the SQLite file itself is sound.
        let backend = SqliteBackend::open(&db).unwrap();
        let ok: String = backend
            .connection()
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(ok, "ok", "integrity_check");
        self.checked = log.len();
    }

    /// Record where the lane's child was when it was killed.
    fn kill_point(&mut self, dir: &Path, lane: &str) -> &'static str {
        let phase = fs::read_to_string(dir.join(format!("phase-{lane}.txt"))).unwrap_or_default();
        let mut words = phase.split_whitespace();
        let what = words.next().unwrap_or("");
        let committed = self.committed.get(lane).copied().unwrap_or(0);
        let durable = words
            .next()
            .map(|i| i.parse::<u64>().unwrap() <= committed)
            .unwrap_or(false);
        let point = match (what, durable) {
            ("", _) => "starting up",
            ("open", _) => "opening the database",
            ("prepare", _) => "preparing the next iteration",
            ("build", _) => "building a transaction",
            ("commit", false) => "inside commit (rolled back)",
            ("commit", true) => "inside commit (already durable)",
            ("auto", false) => "inside autocommit (rolled back)",
            ("auto", true) => "inside autocommit (already durable)",
            ("ack", _) => "after commit, acknowledging",
            ("pause", _) => "between transactions",
            _ => panic!("unknown phase {phase:?}"),
        };
        *self.kill_points.entry(point).or_default() += 1;
        point
    }

    fn summary(&self, kills: usize, elapsed: Duration) {
        eprintln!(
            "crash: survived {kills} kill -9 points in {elapsed:.1?}: {} transactions committed \
             ({:?}), {} acknowledged, {} killed between commit and ack; none lost, none partial",
            self.total(),
            self.committed,
            self.acked.values().sum::<usize>(),
            self.unacked.len(),
        );
        eprintln!("crash: kill points: {:?}", self.kill_points);
    }
}

fn rounds() -> usize {
    std::env::var(ROUNDS_ENV)
        .ok()
        .map(|v| v.parse().expect("DBOS_CRASH_ROUNDS must be a number"))
        .unwrap_or(30)
}

#[test]
fn kill_9_loses_no_commit_and_exposes_no_partial_one() {
    if std::env::var_os(CHILD_ENV).is_some() {
        return;
    }
    let rounds = rounds();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut rng = rand::thread_rng();
    let mut checker = Checker::default();
    let started = Instant::now();
    for round in 0..rounds {
        let mut writer = Writer::spawn(dir, "solo", 0);
        let delay = rng.gen_range(5..=150);
        std::thread::sleep(Duration::from_millis(delay));
        writer.kill_9(dir);
        let before = checker.total();
        checker.verify(dir, &["solo"], &[], round + 1 == rounds);
        let point = checker.kill_point(dir, "solo");
        eprintln!(
            "round {round}: killed after {delay} ms {point}; {} new transactions, {} in all",
            checker.total() - before,
            checker.total()
        );
    }
    checker.summary(rounds, started.elapsed());
    assert!(checker.total() > 0, "nothing was ever committed");
}

/// One writer is killed over and over while another keeps committing: a
/// process dying inside its commit (holding the write lock) must neither stop
/// nor damage the other.
#[test]
fn kill_9_of_one_writer_leaves_another_unharmed() {
    if std::env::var_os(CHILD_ENV).is_some() {
        return;
    }
    let rounds = rounds().div_ceil(2);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    // Create the database first, so the two children do not both wait on
    // its creation.
    drop(Engine::open(dir.join("state.db").to_str().unwrap()).unwrap());
    let lanes = ["steady", "victim"];
    let mut rng = rand::thread_rng();
    let mut checker = Checker::default();
    let started = Instant::now();
    let mut steady = Writer::spawn(dir, "steady", 10);
    let steady_commits = |c: &Checker| c.committed.get("steady").copied().unwrap_or(0);
    let mut steady_progressed = 0;
    for round in 0..rounds {
        let before = steady_commits(&checker);
        let mut victim = Writer::spawn(dir, "victim", 0);
        let delay = rng.gen_range(5..=150);
        std::thread::sleep(Duration::from_millis(delay));
        victim.kill_9(dir);
        steady.assert_alive(dir);
        checker.verify(dir, &lanes, &["steady"], false);
        if steady_commits(&checker) > before {
            steady_progressed += 1;
        }
        let point = checker.kill_point(dir, "victim");
        eprintln!(
            "round {round}: victim killed after {delay} ms {point}; committed {:?}",
            checker.committed
        );
    }
    // The steady writer keeps committing after every kill.
    let before = steady_commits(&checker);
    std::thread::sleep(Duration::from_millis(200));
    steady.kill_9(dir);
    checker.verify(dir, &lanes, &[], true);
    assert!(
        steady_commits(&checker) > before,
        "the steady writer stopped committing"
    );
    checker.kill_point(dir, "steady");
    checker.summary(rounds + 1, started.elapsed());
    eprintln!("crash: the steady writer progressed in {steady_progressed} of {rounds} rounds");
    assert!(checker.committed.get("victim").copied().unwrap_or(0) > 0);
}
