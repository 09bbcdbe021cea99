//! Load: several processes making read-then-write transactions on a few
//! shared paths at once. Every transaction must either commit or report a
//! conflict (any other error fails the test), and the committed history must
//! be serializable.
//!
//! The test binary re-executes itself (the sled pattern): with
//! `DBOS_LOAD_CHILD=<database>` set, the `load_child` test becomes worker
//! `DBOS_LOAD_WORKER`, which opens its own `Engine` on the database and makes
//! `DBOS_LOAD_COUNT` transaction attempts (no retries). Each attempt reads
//! files and config keys and writes back what it derived from them (append a
//! line to a file, increment or unset a counter, copy a file's content
//! over another, move a file over another, delete a file; some attempts
//! only read). For every attempt the worker
//! writes one JSON line to its own results file: the values it read, the
//! operations it made, and the outcome (committed transaction id, no change,
//! conflict, or any other error).
//!
//! The parent then checks serializability by replaying the committed
//! transactions in commit (id) order against the shared in-memory model
//! (`common/model.rs`): at its commit position, the model must hold exactly
//! the values the transaction read; then the model applies its operations,
//! and the engine's state as of every transaction id (whole tree, contents,
//! config) must equal the model's. Every attempt's reads must also equal the
//! model's state at the attempt's snapshot (each transaction sees one
//! consistent moment, even one that then conflicts).
//!
//! On the backend under test (`common::fresh`: SQLite, or PostgreSQL with
//! `DBOS_TEST_BACKEND=postgres DBOS_TEST_PG=<url>`). Size: `DBOS_LOAD_PROCS`
//! processes (8) x `DBOS_LOAD_TXNS` attempts each (1000, the figure:
//! under a minute in a debug build on SQLite, about 1.5 on PostgreSQL; lower
//! it for quick runs). `DBOS_LOAD_SEED` fixes the workers' random choices
//! (not their interleaving). Throughput and conflict rate are printed
//! (`--nocapture`).

mod common;

use common::model::{apply_engine, compare_view, Data, FsOp, Node, State};
use dbos_engine::{Actor, Engine, Entry, Error, TxId, Txn, VPath};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};
use std::io::{BufWriter, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const CHILD_ENV: &str = "DBOS_LOAD_CHILD";
const WORKER_ENV: &str = "DBOS_LOAD_WORKER";
const COUNT_ENV: &str = "DBOS_LOAD_COUNT";
const DIR_ENV: &str = "DBOS_LOAD_DIR";
const SEED_ENV: &str = "DBOS_LOAD_SEED";
const CHILD_TEST: &str = "load_child";

/// The shared files every worker reads and writes.
const FILES: &[&str] = &["/s/a", "/s/b", "/s/c", "/s/d"];
/// The shared config counters.
const COUNTERS: &[&str] = &["load.n0", "load.n1", "load.n2"];
/// A file longer than this is restarted empty by the next append.
const MAX_FILE: usize = 400;
/// A counter reaching this is unset by the next increment.
const MAX_COUNT: u64 = 25;

fn vp(s: &str) -> VPath {
    VPath::parse(s).expect("fixed paths are valid")
}

fn env_or(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?}: expected a number")),
        Err(_) => default,
    }
}

fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_micros() as i64
}

// ----- what a results file holds ----------------------------------------------

/// A key an attempt read.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
enum Target {
    File(String),
    Config(String),
}

/// One value read: a file's content or a config value; None when absent.
#[derive(Serialize, Deserialize, Debug, Clone)]
struct Read {
    target: Target,
    value: Option<String>,
}

/// One write, as given to the engine.
#[derive(Serialize, Deserialize, Debug, Clone)]
enum Op {
    Write { path: String, content: String },
    Rename { from: String, to: String },
    Remove { path: String },
    ConfigSet { key: String, value: String },
    ConfigUnset { key: String },
}

impl Op {
    /// The model's operation and its bytes (also what the engine runs).
    fn fs(&self) -> (FsOp, Vec<u8>) {
        let op = match self {
            Op::Write { path, content } => FsOp::Write {
                path: path.clone(),
                data: Data::Literal(content.as_bytes().to_vec()),
                append: false,
            },
            Op::Rename { from, to } => FsOp::Rename {
                from: from.clone(),
                to: to.clone(),
            },
            Op::Remove { path } => FsOp::Remove {
                path: path.clone(),
                recursive: false,
            },
            Op::ConfigSet { key, value } => FsOp::ConfigSet {
                key: key.clone(),
                value: value.clone(),
            },
            Op::ConfigUnset { key } => FsOp::ConfigUnset { key: key.clone() },
        };
        let bytes = match self {
            Op::Write { content, .. } => content.as_bytes().to_vec(),
            _ => Vec::new(),
        };
        (op, bytes)
    }
}

/// Reads, then the writes derived from them.
#[derive(Serialize, Deserialize, Debug, Clone, Default)]
struct Step {
    reads: Vec<Read>,
    ops: Vec<Op>,
}

/// How an attempt ended.
#[derive(Serialize, Deserialize, Debug, Clone)]
enum Outcome {
    Committed(TxId),
    /// Commit returned no transaction (nothing was written).
    NoChange,
    Conflict(String),
    /// Any other error: a failure of the test.
    Failed(String),
}

/// One transaction attempt of a worker.
#[derive(Serialize, Deserialize, Debug, Clone)]
struct Attempt {
    worker: u64,
    n: u64,
    snapshot: TxId,
    steps: Vec<Step>,
    outcome: Outcome,
}

/// A line of a results file.
#[derive(Serialize, Deserialize, Debug)]
enum Line {
    Attempt(Attempt),
    /// When the worker's attempts started and ended (µs since the epoch).
    Span {
        start_us: i64,
        end_us: i64,
    },
}

// ----- the worker -----------------------------------------------------------------

/// The worker role (does nothing in a normal test run).
#[test]
fn load_child() {
    let Ok(location) = std::env::var(CHILD_ENV) else {
        return;
    };
    let worker = env_or(WORKER_ENV, 0);
    let count = env_or(COUNT_ENV, 0);
    let seed = env_or(SEED_ENV, 0);
    let dir = PathBuf::from(std::env::var(DIR_ENV).expect("child: results dir"));
    let mut engine = Engine::open(&location).expect("child: open");
    let mut rng = StdRng::seed_from_u64(seed ^ worker.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let out = std::fs::File::create(dir.join(format!("worker-{worker}.jsonl")))
        .expect("child: results file");
    let mut out = BufWriter::new(out);
    // Start together: announce readiness, wait for the parent's go.
    std::fs::write(dir.join(format!("ready-{worker}")), b"").expect("child: ready");
    while !dir.join("go").exists() {
        std::thread::sleep(Duration::from_millis(1));
    }
    let start_us = now_us();
    for n in 0..count {
        let a = attempt(&mut engine, &mut rng, worker, n);
        let line = serde_json::to_string(&Line::Attempt(a)).expect("child: json");
        writeln!(out, "{line}").expect("child: write results");
    }
    let end_us = now_us();
    let line = serde_json::to_string(&Line::Span { start_us, end_us }).expect("child: json");
    writeln!(out, "{line}").expect("child: write results");
    out.flush().expect("child: flush results");
}

/// A file's content as the transaction sees it (None: absent).
fn read_file(tx: &mut Txn<'_>, path: &str) -> dbos_engine::Result<Option<String>> {
    Ok(match tx.stat(&vp(path))? {
        None => None,
        Some(Entry::File { .. }) => {
            Some(String::from_utf8_lossy(&tx.read_file(&vp(path))?).into_owned())
        }
        Some(other) => Some(format!("<not a file: {other:?}>")),
    })
}

fn read(tx: &mut Txn<'_>, step: &mut Step, target: Target) -> dbos_engine::Result<Option<String>> {
    let value = match &target {
        Target::File(p) => read_file(tx, p)?,
        Target::Config(k) => tx.config_get(k)?,
    };
    step.reads.push(Read {
        target,
        value: value.clone(),
    });
    Ok(value)
}

fn pick<'a>(rng: &mut StdRng, from: &[&'a str]) -> &'a str {
    from[rng.gen_range(0..from.len())]
}

/// One step: read, then write what follows from it.
fn step(tx: &mut Txn<'_>, rng: &mut StdRng, worker: u64, n: u64) -> dbos_engine::Result<Step> {
    let mut s = Step::default();
    let roll = rng.gen_range(0..100);
    if roll < 35 {
        // Append a line to a file: read it, write it back longer.
        let path = pick(rng, FILES).to_string();
        let old = read(tx, &mut s, Target::File(path.clone()))?.unwrap_or_default();
        let base = if old.len() > MAX_FILE { "" } else { &old };
        let content = format!("{base}w{worker}.{n}\n");
        s.ops.push(Op::Write { path, content });
    } else if roll < 60 {
        // Increment a counter (unset it once it is high).
        let key = pick(rng, COUNTERS).to_string();
        let old = read(tx, &mut s, Target::Config(key.clone()))?;
        let v: u64 = old.as_deref().map_or(0, |v| v.parse().unwrap_or(0));
        s.ops.push(if v >= MAX_COUNT {
            Op::ConfigUnset { key }
        } else {
            Op::ConfigSet {
                key,
                value: (v + 1).to_string(),
            }
        });
    } else if roll < 70 {
        // Copy one file over another by reading it and writing the other:
        // the source is read but not written, so only validation of the
        // transaction's reads keeps this serializable.
        let from = pick(rng, FILES).to_string();
        let to = pick(rng, FILES).to_string();
        let src = read(tx, &mut s, Target::File(from.clone()))?;
        if let (Some(content), true) = (src, from != to) {
            s.ops.push(Op::Write { path: to, content });
        }
    } else if roll < 85 {
        // Move one file over another, when the first exists.
        let from = pick(rng, FILES).to_string();
        let to = pick(rng, FILES).to_string();
        let src = read(tx, &mut s, Target::File(from.clone()))?;
        read(tx, &mut s, Target::File(to.clone()))?;
        if src.is_some() && from != to {
            s.ops.push(Op::Rename { from, to });
        }
    } else {
        // Delete a file, when it exists.
        let path = pick(rng, FILES).to_string();
        if read(tx, &mut s, Target::File(path.clone()))?.is_some() {
            s.ops.push(Op::Remove { path });
        }
    }
    for op in &s.ops {
        let (fs, bytes) = op.fs();
        apply_engine(tx, &fs, &bytes)?;
    }
    Ok(s)
}

/// One transaction attempt: 15% only read everything, the others make one to
/// three read-then-write steps.
fn attempt(engine: &mut Engine, rng: &mut StdRng, worker: u64, n: u64) -> Attempt {
    let actor = Actor {
        author: format!("w{worker}"),
        uid: 0,
        gid: 0,
    };
    let mut a = Attempt {
        worker,
        n,
        snapshot: 0,
        steps: Vec::new(),
        outcome: Outcome::NoChange,
    };
    let classify = |e: Error| match e {
        Error::Conflict { .. } => Outcome::Conflict(e.to_string()),
        other => Outcome::Failed(format!("{other} ({other:?})")),
    };
    let mut tx = match engine.begin("main", &actor) {
        Ok(tx) => tx,
        Err(e) => {
            a.outcome = classify(e);
            return a;
        }
    };
    a.snapshot = tx.state().snapshot();
    let mut body = |tx: &mut Txn<'_>, steps: &mut Vec<Step>| -> dbos_engine::Result<()> {
        if rng.gen_range(0..100) < 15 {
            let mut s = Step::default();
            for f in FILES {
                read(tx, &mut s, Target::File(f.to_string()))?;
            }
            for k in COUNTERS {
                read(tx, &mut s, Target::Config(k.to_string()))?;
            }
            steps.push(s);
            return Ok(());
        }
        for _ in 0..rng.gen_range(1..=3) {
            steps.push(step(tx, rng, worker, n)?);
        }
        Ok(())
    };
    if let Err(e) = body(&mut tx, &mut a.steps) {
        a.outcome = classify(e);
        return a;
    }
    a.outcome = match tx.commit(&format!("load w{worker} #{n}"), None) {
        Ok(Some(info)) => Outcome::Committed(info.id),
        Ok(None) => Outcome::NoChange,
        Err(e) => classify(e),
    };
    a
}

// ----- the parent -------------------------------------------------------------------

/// A worker process, killed if the parent panics.
struct Proc(Option<Child>);

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Check `step`'s reads against `state`, then apply its writes to it.
fn replay(state: &mut State, step: &Step) -> Result<(), String> {
    for r in &step.reads {
        let have = match &r.target {
            Target::File(p) => match state.files.get(p) {
                None => None,
                Some(Node::File { blob, .. }) => {
                    Some(String::from_utf8_lossy(&blob.bytes).into_owned())
                }
                Some(other) => Some(format!("<not a file: {other:?}>")),
            },
            Target::Config(k) => state.config.get(k).cloned(),
        };
        if have != r.value {
            return Err(format!(
                "read {:?} = {:?}, but the model holds {have:?}",
                r.target, r.value
            ));
        }
    }
    for op in &step.ops {
        let (fs, bytes) = op.fs();
        state
            .apply(&mut Vec::new(), &fs, &bytes)
            .map_err(|e| format!("{op:?} fails on the model: {e}"))?;
    }
    Ok(())
}

/// Check the reads of an attempt's steps against `state` (applying the
/// steps' own writes in between); the state after the attempt.
fn replay_all(mut state: State, a: &Attempt) -> Result<State, String> {
    for (i, s) in a.steps.iter().enumerate() {
        replay(&mut state, s).map_err(|e| format!("step {i}: {e}"))?;
    }
    Ok(state)
}

fn read_results(dir: &Path, worker: u64) -> (Vec<Attempt>, (i64, i64)) {
    let text = std::fs::read_to_string(dir.join(format!("worker-{worker}.jsonl"))).unwrap();
    let mut attempts = Vec::new();
    let mut span = None;
    for line in text.lines() {
        match serde_json::from_str(line).unwrap() {
            Line::Attempt(a) => attempts.push(a),
            Line::Span { start_us, end_us } => span = Some((start_us, end_us)),
        }
    }
    (attempts, span.expect("worker wrote its span"))
}

#[test]
fn processes_commit_or_conflict_and_history_is_serializable() {
    let procs = env_or("DBOS_LOAD_PROCS", 8);
    let txns = env_or("DBOS_LOAD_TXNS", 1000);
    let seed = env_or(SEED_ENV, now_us() as u64);
    let backend = if common::on_postgres() {
        "postgres"
    } else {
        "sqlite"
    };
    let db = common::fresh();
    let results = db.dir.path().join("results");
    std::fs::create_dir(&results).unwrap();

    // T1 (made by `Engine::open`) is the root directory; T2 the shared one.
    let mut engine = Engine::open(&db.location).unwrap();
    let (_, info) = engine
        .autocommit("main", &Actor::default(), "mkdir /s", |tx| {
            tx.mkdir(&vp("/s"), false, 0o755)
        })
        .unwrap();
    assert_eq!(info.map(|i| i.id), Some(2));
    let mut states: Vec<Arc<State>> = vec![Arc::new(State::default()), Arc::new(State::initial())];
    let mut s1 = State::initial();
    s1.apply(
        &mut Vec::new(),
        &FsOp::Mkdir {
            path: "/s".to_string(),
            parents: false,
            mode: 0o755,
        },
        &[],
    )
    .unwrap();
    states.push(Arc::new(s1));

    let mut children: Vec<Proc> = (0..procs)
        .map(|w| {
            let child = Command::new(std::env::current_exe().unwrap())
                .args(["--exact", CHILD_TEST, "--nocapture", "--test-threads=1"])
                .env(CHILD_ENV, &db.location)
                .env(WORKER_ENV, w.to_string())
                .env(COUNT_ENV, txns.to_string())
                .env(DIR_ENV, &results)
                .env(SEED_ENV, seed.to_string())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn worker");
            Proc(Some(child))
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(120);
    while (0..procs).any(|w| !results.join(format!("ready-{w}")).exists()) {
        assert!(Instant::now() < deadline, "workers did not start");
        // A worker that died before it was ready (say, it could not open the
        // database): its own report.
        for (w, p) in children.iter_mut().enumerate() {
            if let Some(status) = p.0.as_mut().and_then(|c| c.try_wait().unwrap()) {
                let out = p.0.take().unwrap().wait_with_output().unwrap();
                panic!(
                    "worker {w} exited before it started ({status}):\n{}\n{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    std::fs::write(results.join("go"), b"").unwrap();
    for (w, p) in children.iter_mut().enumerate() {
        let out = p.0.take().unwrap().wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "worker {w} failed ({}):\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    // Gather the attempts; any error other than a conflict is a failure.
    let mut attempts = Vec::new();
    let (mut first, mut last) = (i64::MAX, i64::MIN);
    for w in 0..procs {
        let (a, (start, end)) = read_results(&results, w);
        assert_eq!(a.len() as u64, txns, "worker {w}: attempts recorded");
        first = first.min(start);
        last = last.max(end);
        attempts.extend(a);
    }
    let failed: Vec<&Attempt> = attempts
        .iter()
        .filter(|a| matches!(a.outcome, Outcome::Failed(_)))
        .collect();
    assert!(
        failed.is_empty(),
        "{} attempts failed with an error other than a conflict, e.g. {:?}",
        failed.len(),
        &failed[..failed.len().min(5)]
    );

    // Every committed id once, and together with T1 and T2 the whole log.
    let mut committed: BTreeMap<TxId, &Attempt> = BTreeMap::new();
    for a in &attempts {
        if let Outcome::Committed(t) = a.outcome {
            assert!(
                committed.insert(t, a).is_none(),
                "T{t} claimed by two attempts"
            );
        }
    }
    let log = common::checked_log(&mut engine);
    let head = log.len() as TxId;
    assert_eq!(
        committed.keys().copied().collect::<Vec<_>>(),
        (3..=head).collect::<Vec<_>>(),
        "committed ids against the log"
    );
    for info in &log[2..] {
        let a = committed[&info.id];
        assert_eq!(
            info.author,
            format!("w{}", a.worker),
            "author of T{}",
            info.id
        );
        assert_eq!(info.command, format!("load w{} #{}", a.worker, a.n));
    }

    // Replay in commit order: reads at the commit position, then writes.
    for (&t, a) in &committed {
        assert!(
            a.steps.iter().any(|s| !s.ops.is_empty()),
            "T{t} committed though the attempt wrote nothing: {a:?}"
        );
        let before = (*states[t as usize - 1]).clone();
        let after = replay_all(before, a)
            .unwrap_or_else(|e| panic!("T{t} is not serializable in commit order: {e}\n{a:?}"));
        states.push(Arc::new(after));
    }
    // Every attempt saw one consistent moment: its snapshot. One that
    // recorded no transaction changed nothing there (a file created and
    // deleted again is no change).
    for a in &attempts {
        let at = &states[a.snapshot as usize];
        let after = replay_all((**at).clone(), a).unwrap_or_else(|e| {
            panic!(
                "w{} #{} read values not of its snapshot T{}: {e}\n{a:?}",
                a.worker, a.n, a.snapshot
            )
        });
        if matches!(a.outcome, Outcome::NoChange) {
            assert!(after == **at, "a change recorded no transaction: {a:?}");
        }
    }
    // The engine as of every transaction equals the model.
    let mut universe: Vec<String> = ["/", "/s", "/s/never"].map(String::from).to_vec();
    universe.extend(FILES.iter().map(|f| f.to_string()));
    let mut verified = HashSet::new();
    for t in 1..=head {
        let mut view = engine.view_at("main", t).unwrap();
        compare_view(&mut view, &states[t as usize], &universe, &mut verified)
            .unwrap_or_else(|e| panic!("engine at T{t} differs from the model: {e}"));
    }

    let count = |f: fn(&Outcome) -> bool| attempts.iter().filter(|a| f(&a.outcome)).count();
    let conflicts = count(|o| matches!(o, Outcome::Conflict(_)));
    let unchanged = count(|o| matches!(o, Outcome::NoChange));
    let commits = committed.len();
    let writing = commits + conflicts;
    let secs = (last - first) as f64 / 1e6;
    println!(
        "load on {backend}: {procs} processes x {txns} attempts in {secs:.2}s: \
         {commits} committed ({:.0} committed tx/s), {conflicts} conflicts \
         ({:.1}% of all attempts, {:.1}% of attempts that wrote), {unchanged} read-only \
         or no change; seed {seed}",
        commits as f64 / secs,
        100.0 * conflicts as f64 / attempts.len() as f64,
        100.0 * conflicts as f64 / writing.max(1) as f64,
    );
    assert!(commits > 0, "no transaction committed");
}
