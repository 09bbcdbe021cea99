//! Power loss, not only process death: database files rebuilt as a power cut
//! would have left them must open to exactly the transactions committed
//! before the cut, all of them acknowledged, none partial.
//!
//! # How
//!
//! The engine runs on the recording VFS of `powerloss/vfs.rs` (the real
//! `unix` VFS plus a log of every write, truncate, sync and delete on the
//! main database, its `-wal` and its `-journal`, in issue order). A random
//! workload runs through the Engine API: multi-file transactions of writes
//! (small, page-sized and multi-chunk incompressible content), removals
//! (recursive too), mkdirs, config sets/unsets, by `begin`/`commit` or
//! `autocommit`, plus branches forked from `main` and committed to. Every
//! durable step (a commit, a branch creation) is numbered; for each we keep
//! the log positions where it started and where it returned, the model's
//! state of every branch after it, and a fingerprint of the database taken
//! through a separate ordinary connection right after it returned: a hash
//! of every row of every table (schema included) except `chunks`, plus the
//! set of hashes of each `chunks` row (every column).
//!
//! # What is promised
//!
//! The backend runs `journal_mode=WAL` with `synchronous=EXTRA`: the WAL is
//! fsynced inside every commit, so a commit that returned is durable, not
//! only one before the last checkpoint. (EXTRA rather than FULL: a new
//! database switches to WAL through a rollback journal, and only EXTRA
//! fsyncs the folder after unlinking it. With FULL this test finds images
//! where the unlink is lost, the stale journal rolls page 1 back to an
//! empty file, SQLite then deletes the WAL, and every commit is gone; with
//! NORMAL it finds acknowledged commits lost.)
//!
//! # Crash images
//!
//! A crash point `C` is a log position (uniform, or right before/after a
//! sync). The file system model, per file (as on Linux: `fsync` on one file
//! says nothing of another file's unsynced writes):
//! - every operation on the file up to its last sync before `C` is on disk;
//! - each later operation before `C` is independently kept, lost, or (for a
//!   write) torn: kept for a random subset of its 512-byte sectors (the
//!   keep probability is drawn per image: 0, 1 or in between);
//! - nothing after `C` happened;
//! - an unlink is an operation like a write (resetting the file), durable at
//!   once only when SQLite asked for the folder to be synced after it.
//!
//! The `-shm` is not rebuilt (see `vfs.rs`): after a reboot the first
//! connection rebuilds it from the WAL. The images are written into a fresh
//! folder (on `/dev/shm` when there is one) and opened with the normal
//! backend (`SqliteBackend::open`, the `unix` VFS), which must succeed; then:
//! - atomicity: the fingerprint must equal the fingerprint after some step
//!   `k` (the chunk set may hold more: content chunks can be stored ahead of
//!   their commit, and are unreachable until it), so no partial transaction
//!   and no other change anywhere;
//! - durability: `k` is at least the last step whose call returned before
//!   `C`, and at most the last step that had started;
//! - the engine's view of every branch at its tip equals the model after
//!   step `k` (paths, kinds, sizes and content digests, config), and
//!   `verify` is clean (the hash chain always; reading back every file's
//!   content on one image in 8, since the chunk rows are already compared
//!   byte for byte).
//!
//! Every step's state was compared with the model once, during the
//! workload, so equal fingerprints extend that check to the whole history.
//! Crash points start once the database exists (the bootstrap returned).
//!
//! `DBOS_POWERLOSS_STATES=<n>` sets the number of crash images (default
//! 2,000), `DBOS_POWERLOSS_SEED=<n>` the seed (printed on every run; it
//! fixes every random choice, though not the bytes of commit times and
//! mtimes, so the recorded log differs slightly from run to run).

#[path = "powerloss/vfs.rs"]
mod vfs;

use dbos_engine::backend::sqlite::SqliteBackend;
use dbos_engine::{Actor, Engine, Entry, VPath};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Instant;
use vfs::Op;

const SECTOR: u64 = 512;
const STEPS_PER_WORKLOAD: usize = 120;
const STATES_PER_WORKLOAD: usize = 500;

fn vp(s: &str) -> VPath {
    VPath::parse(s).unwrap()
}

// ----- the model ----------------------------------------------------------------

#[derive(Clone, Debug, PartialEq, Eq)]
enum Node {
    Dir,
    /// Size and BLAKE3 digest of the content.
    File(u64, [u8; 32]),
}

/// One branch: tree (absolute paths, `/` excluded) and config.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct State {
    tree: BTreeMap<String, Node>,
    config: BTreeMap<String, String>,
}

fn parent(p: &str) -> &str {
    &p[..p.rfind('/').unwrap()]
}

impl State {
    fn remove(&mut self, path: &str) {
        let prefix = format!("{path}/");
        self.tree
            .retain(|p, _| p != path && !p.starts_with(&prefix));
    }
}

/// The fingerprint of a database: a hash of the rows of every table but
/// `chunks`, and the set of hashes of each `chunks` row (all columns).
#[derive(Clone, PartialEq, Eq)]
struct Fingerprint {
    rows: [u8; 32],
    chunks: BTreeSet<[u8; 32]>,
}

fn fingerprint(conn: &Connection) -> Fingerprint {
    let mut tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    tables.retain(|t| t != "chunks");
    tables.insert(0, "sqlite_master".to_string());
    let mut h = blake3::Hasher::new();
    for t in &tables {
        let mut stmt = conn.prepare(&format!("SELECT * FROM \"{t}\"")).unwrap();
        let n = stmt.column_count();
        let mut rows: Vec<Vec<u8>> = Vec::new();
        let mut q = stmt.query([]).unwrap();
        while let Some(r) = q.next().unwrap() {
            let mut enc = Vec::new();
            for i in 0..n {
                match r.get_ref(i).unwrap() {
                    ValueRef::Null => enc.push(0),
                    ValueRef::Integer(v) => {
                        enc.push(1);
                        enc.extend_from_slice(&v.to_le_bytes());
                    }
                    ValueRef::Real(v) => {
                        enc.push(2);
                        enc.extend_from_slice(&v.to_le_bytes());
                    }
                    ValueRef::Text(b) | ValueRef::Blob(b) => {
                        enc.push(3);
                        enc.extend_from_slice(&(b.len() as u64).to_le_bytes());
                        enc.extend_from_slice(b);
                    }
                }
            }
            rows.push(enc);
        }
        rows.sort();
        h.update(t.as_bytes());
        h.update(&(rows.len() as u64).to_le_bytes());
        for r in rows {
            h.update(&r);
        }
    }
    let mut chunks = BTreeSet::new();
    let mut stmt = conn
        .prepare("SELECT id, hash, size, codec, data FROM chunks")
        .unwrap();
    let mut q = stmt.query([]).unwrap();
    while let Some(r) = q.next().unwrap() {
        let mut h = blake3::Hasher::new();
        h.update(&r.get::<_, i64>(0).unwrap().to_le_bytes());
        h.update(r.get_ref(1).unwrap().as_blob().unwrap());
        h.update(&r.get::<_, i64>(2).unwrap().to_le_bytes());
        h.update(&r.get::<_, i64>(3).unwrap().to_le_bytes());
        h.update(r.get_ref(4).unwrap().as_blob().unwrap());
        chunks.insert(*h.finalize().as_bytes());
    }
    Fingerprint {
        rows: *h.finalize().as_bytes(),
        chunks,
    }
}

/// The engine's view of a branch at its tip, as a model state.
fn engine_state(engine: &mut Engine, branch: &str) -> State {
    let info = engine.branch(branch).unwrap();
    let tip = engine.branch_tip(&info).unwrap();
    let mut v = engine.view_at(branch, tip).unwrap();
    let mut st = State::default();
    for (p, e) in v.walk(&vp("/")).unwrap() {
        let p = p.to_string();
        if p == "/" {
            continue;
        }
        let node = match e {
            Entry::Dir { .. } => Node::Dir,
            Entry::File { content, .. } => Node::File(content.size, content.digest),
            other => panic!("{p}: unexpected {other:?}"),
        };
        st.tree.insert(p, node);
    }
    st.config = v.config_list().unwrap().into_iter().collect();
    st
}

// ----- the workload ---------------------------------------------------------------

/// A durable step (commit or branch creation) and what follows it.
struct Step {
    /// Log position when the step began (nothing of it before).
    start: usize,
    /// Log position when its call returned (acknowledged).
    end: usize,
    /// Model of every branch after the step.
    branches: BTreeMap<String, State>,
    fingerprint: Fingerprint,
}

fn content(rng: &mut StdRng) -> Vec<u8> {
    let len = match rng.gen_range(0..10) {
        0 => rng.gen_range(0..16),
        1 | 2 => rng.gen_range(30_000..70_000), // several chunks and pages
        _ => rng.gen_range(100..6_000),
    };
    if rng.gen_bool(0.5) {
        (0..len).map(|_| rng.gen()).collect()
    } else {
        let word = format!("line {} ", rng.gen::<u16>());
        word.bytes().cycle().take(len).collect()
    }
}

/// One random change, applied to the transaction and to the model alike.
fn random_change(
    rng: &mut StdRng,
    tx: &mut dbos_engine::Txn<'_>,
    st: &mut State,
) -> dbos_engine::Result<()> {
    match rng.gen_range(0..10) {
        0..=4 => {
            let dir = format!("/d{}", rng.gen_range(0..4));
            let path = if rng.gen_bool(0.2) {
                format!("/f{}", rng.gen_range(0..3))
            } else {
                format!("{dir}/f{}", rng.gen_range(0..6))
            };
            if st.tree.get(&path) == Some(&Node::Dir) {
                return Ok(());
            }
            let par = parent(&path);
            if !par.is_empty() && !st.tree.contains_key(par) {
                tx.mkdir(&vp(par), true, 0o755)?;
                st.tree.insert(par.to_string(), Node::Dir);
            }
            let bytes = content(rng);
            tx.write_bytes(&vp(&path), &bytes)?;
            st.tree.insert(
                path,
                Node::File(bytes.len() as u64, *blake3::hash(&bytes).as_bytes()),
            );
        }
        5 => {
            let dir = format!("/d{}/s{}", rng.gen_range(0..4), rng.gen_range(0..2));
            if !st.tree.contains_key(&dir) {
                tx.mkdir(&vp(&dir), true, 0o755)?;
                st.tree.insert(parent(&dir).to_string(), Node::Dir);
                st.tree.insert(dir, Node::Dir);
            }
        }
        6 | 7 => {
            let existing: Vec<String> = st.tree.keys().cloned().collect();
            if !existing.is_empty() {
                let p = existing[rng.gen_range(0..existing.len())].clone();
                tx.remove(&vp(&p), true)?;
                st.remove(&p);
            }
        }
        8 => {
            let key = format!("pl.k{}", rng.gen_range(0..5));
            let value = format!("v{}", rng.gen::<u32>());
            tx.config_set(&key, &value)?;
            st.config.insert(key, value);
        }
        _ => {
            let key = format!("pl.k{}", rng.gen_range(0..5));
            if st.config.remove(&key).is_some() {
                tx.config_unset(&key)?;
            }
        }
    }
    Ok(())
}

struct Workload {
    log: vfs::Log,
    steps: Vec<Step>,
    /// Role of each recorded file: its path's suffix (`""`, `-wal`, `-journal`).
    suffixes: Vec<String>,
}

fn run_workload(seed: u64) -> Workload {
    let mut rng = StdRng::seed_from_u64(seed);
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("state.db");
    vfs::take();
    let backend = SqliteBackend::open_with_vfs(&db, Some(vfs::NAME)).unwrap();
    let mut engine = Engine::with_backend(Box::new(backend)).unwrap();
    let actor = Actor {
        author: "powerloss".to_string(),
        uid: 1000,
        gid: 1000,
    };
    // A second, ordinary connection (not recorded) reads fingerprints.
    let reader = Connection::open_with_flags(&db, OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    let mut models: BTreeMap<String, State> = BTreeMap::new();
    models.insert("main".to_string(), State::default());
    let pos = vfs::position();
    let mut steps = vec![Step {
        start: pos,
        end: pos,
        branches: models.clone(),
        fingerprint: fingerprint(&reader),
    }];
    while steps.len() <= STEPS_PER_WORKLOAD {
        let start = vfs::position();
        if rng.gen_ratio(1, 25) && models.len() < 4 {
            let name = format!("b{}", models.len());
            let head = engine.head().unwrap();
            engine.create_branch(&name, "main", head).unwrap();
            let main = models["main"].clone();
            models.insert(name, main);
        } else {
            let branches: Vec<String> = models.keys().cloned().collect();
            let branch = if rng.gen_bool(0.7) {
                "main".to_string()
            } else {
                branches[rng.gen_range(0..branches.len())].clone()
            };
            let mut st = models[&branch].clone();
            let n = rng.gen_range(1..=6);
            let seed: u64 = rng.gen();
            let work = |tx: &mut dbos_engine::Txn<'_>, st: &mut State| {
                let mut r = StdRng::seed_from_u64(seed);
                for _ in 0..n {
                    random_change(&mut r, tx, st)?;
                }
                // Always change something, so that the commit is a step.
                let value = format!("{seed}");
                tx.config_set("pl.step", &value)?;
                st.config.insert("pl.step".to_string(), value);
                Ok(())
            };
            let info = if rng.gen_bool(0.3) {
                let base = st.clone();
                engine
                    .autocommit(&branch, &actor, "step", |tx| {
                        st = base.clone();
                        work(tx, &mut st)
                    })
                    .unwrap()
                    .1
            } else {
                let mut tx = engine.begin(&branch, &actor).unwrap();
                work(&mut tx, &mut st).unwrap();
                tx.commit("step", Some(format!("step {}", steps.len())))
                    .unwrap()
            };
            assert!(info.is_some(), "step {} changed nothing", steps.len());
            models.insert(branch.clone(), st);
        }
        let end = vfs::position();
        // The state after this step, checked once against the model.
        for (b, st) in &models {
            assert_eq!(&engine_state(&mut engine, b), st, "workload: branch {b}");
        }
        steps.push(Step {
            start,
            end,
            branches: models.clone(),
            fingerprint: fingerprint(&reader),
        });
    }
    // Close (the last connection checkpoints and deletes the WAL): crash
    // points after it must give the last step.
    drop(reader);
    drop(engine);
    let log = vfs::take();
    let suffixes = log
        .files
        .iter()
        .map(|p| {
            let name = Path::new(p).file_name().unwrap().to_string_lossy();
            name.strip_prefix("state.db")
                .unwrap_or_else(|| panic!("unexpected file {p}"))
                .to_string()
        })
        .collect();
    Workload {
        log,
        steps,
        suffixes,
    }
}

// ----- crash images ---------------------------------------------------------------

/// Apply one operation to a file's bytes; `sectors` keeps only some
/// 512-byte sectors of a write (a torn write).
fn apply(file: &mut Vec<u8>, op: &Op, sectors: Option<&mut StdRng>) {
    match op {
        Op::Write { offset, data } => {
            let (start, end) = (*offset as usize, *offset as usize + data.len());
            match sectors {
                // Appends (most WAL writes) without zero-filling first: a
                // debug build's `resize` is slow.
                None if start >= file.len() => {
                    file.resize(start, 0);
                    file.extend_from_slice(data);
                }
                None if end > file.len() => {
                    let inside = file.len() - start;
                    file[start..].copy_from_slice(&data[..inside]);
                    file.extend_from_slice(&data[inside..]);
                }
                None => file[start..end].copy_from_slice(data),
                Some(rng) => {
                    if file.len() < end {
                        file.resize(end, 0);
                    }
                    let mut at = *offset;
                    while at < end as u64 {
                        let next = ((at / SECTOR + 1) * SECTOR).min(end as u64);
                        if rng.gen_bool(0.5) {
                            let (a, b) = ((at - offset) as usize, (next - offset) as usize);
                            file[at as usize..next as usize].copy_from_slice(&data[a..b]);
                        }
                        at = next;
                    }
                }
            }
        }
        Op::Truncate(n) => file.resize(*n as usize, 0),
        Op::Sync => {}
        Op::Delete { .. } => file.clear(),
    }
}

/// What a power cut at log position `crash` may leave of every file, and
/// how many writes it tore.
fn crash_image(log: &vfs::Log, crash: usize, rng: &mut StdRng) -> (Vec<Vec<u8>>, usize) {
    let keep = match rng.gen_range(0..4) {
        0 => 0.0,
        1 => 1.0,
        _ => rng.gen_range(0.05..0.95),
    };
    let torn = if rng.gen_bool(0.5) { 0.3 } else { 0.0 };
    let ops = &log.ops[..crash];
    let mut files = vec![Vec::new(); log.files.len()];
    let mut torn_writes = 0;
    for (f, file) in files.iter_mut().enumerate() {
        let durable = ops
            .iter()
            .rposition(|(g, op)| {
                *g == f && matches!(op, Op::Sync | Op::Delete { dir_synced: true })
            })
            .map_or(0, |i| i + 1);
        for (i, (g, op)) in ops.iter().enumerate() {
            if *g != f {
                continue;
            }
            if i < durable {
                apply(file, op, None);
            } else if rng.gen_bool(keep) {
                if matches!(op, Op::Write { .. }) && rng.gen_bool(torn) {
                    apply(file, op, Some(rng));
                    torn_writes += 1;
                } else {
                    apply(file, op, None);
                }
            }
        }
    }
    (files, torn_writes)
}

/// A crash point: anywhere, or right before or after a sync.
fn crash_point(w: &Workload, syncs: &[usize], rng: &mut StdRng) -> usize {
    let first = w.steps[0].end;
    let last = w.log.ops.len();
    let later: Vec<usize> = syncs.iter().copied().filter(|&s| s >= first).collect();
    if later.is_empty() || rng.gen_bool(0.4) {
        return rng.gen_range(first..=last);
    }
    let s = later[rng.gen_range(0..later.len())];
    if rng.gen_bool(0.5) {
        s
    } else {
        s + 1
    }
}

struct Stats {
    states: usize,
    by_outcome: BTreeMap<&'static str, usize>,
}

/// Rebuild one crash image in `dir`, open it normally and check it.
fn check_image(w: &Workload, crash: usize, files: &[Vec<u8>], dir: &Path, stats: &mut Stats) {
    for entry in std::fs::read_dir(dir).unwrap() {
        std::fs::remove_file(entry.unwrap().path()).unwrap();
    }
    let db = dir.join("state.db");
    for (bytes, suffix) in files.iter().zip(&w.suffixes) {
        if !bytes.is_empty() || suffix.is_empty() {
            std::fs::write(dir.join(format!("state.db{suffix}")), bytes).unwrap();
        }
    }
    let context = || {
        format!(
            "crash at op {crash} of {}; file sizes {:?}",
            w.log.ops.len(),
            files.iter().map(Vec::len).collect::<Vec<_>>()
        )
    };
    let backend =
        SqliteBackend::open(&db).unwrap_or_else(|e| panic!("{}: open failed: {e}", context()));
    let got = fingerprint(backend.connection());
    // Durability bound: every step whose call returned before the crash.
    let lo = w.steps.iter().rposition(|s| s.end <= crash).unwrap();
    // Nothing of a step that had not started.
    let hi = w
        .steps
        .iter()
        .rposition(|s| s.start < crash)
        .unwrap_or(0)
        .max(lo);
    let k = (lo..=hi)
        .rev()
        .find(|&k| {
            let want = &w.steps[k].fingerprint;
            want.rows == got.rows && want.chunks.is_subset(&got.chunks)
        })
        .unwrap_or_else(|| {
            let any = w.steps.iter().position(|s| s.fingerprint.rows == got.rows);
            let head: Option<i64> = backend
                .connection()
                .query_row("SELECT max(id) FROM transactions", [], |r| r.get(0))
                .unwrap_or(None);
            panic!(
                "{}: state is no step in {lo}..={hi} (it equals step {any:?}; head T{head:?}): \
                 an acknowledged commit lost, or a partial one kept",
                context()
            )
        });
    let all_chunks = &w.steps.last().unwrap().fingerprint.chunks;
    assert!(
        got.chunks.is_subset(all_chunks),
        "{}: unknown chunks",
        context()
    );
    let mut engine = Engine::with_backend(Box::new(backend)).unwrap();
    for (b, st) in &w.steps[k].branches {
        assert_eq!(
            &engine_state(&mut engine, b),
            st,
            "{}: branch {b}",
            context()
        );
    }
    // The content check reads every file back; the chunk rows already
    // equal the original ones byte for byte, so it runs on one image in 8.
    let content = stats.states.is_multiple_of(8);
    let report = engine.verify_with(1, content, &mut |_, _| {}).unwrap();
    assert_eq!(report.broken, None, "{}: hash chain broken", context());
    stats.states += 1;
    let outcome = if k == lo && k == hi {
        "only one possible step"
    } else if k == lo {
        "in-flight step lost"
    } else {
        "in-flight step kept"
    };
    *stats.by_outcome.entry(outcome).or_default() += 1;
}

fn scratch_dir() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        if let Ok(d) = tempfile::tempdir_in(shm) {
            return d;
        }
    }
    tempfile::tempdir().unwrap()
}

fn env_number(name: &str) -> Option<u64> {
    std::env::var(name).ok().map(|v| {
        v.parse()
            .unwrap_or_else(|_| panic!("{name} must be a number, got {v:?}"))
    })
}

#[test]
fn power_cut_keeps_acknowledged_commits_and_no_partial_one() {
    vfs::register();
    let total = env_number("DBOS_POWERLOSS_STATES").unwrap_or(2_000) as usize;
    let seed = env_number("DBOS_POWERLOSS_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64
    });
    println!("powerloss: seed {seed} (DBOS_POWERLOSS_SEED), {total} crash states");
    let started = Instant::now();
    let scratch = scratch_dir();
    let dir: PathBuf = scratch.path().to_path_buf();
    let mut stats = Stats {
        states: 0,
        by_outcome: BTreeMap::new(),
    };
    let mut rng = StdRng::seed_from_u64(seed);
    let mut workloads = 0;
    let (mut ops, mut syncs_total, mut torn_total) = (0, 0, 0);
    while stats.states < total {
        let w = run_workload(rng.gen());
        workloads += 1;
        let syncs: Vec<usize> = w
            .log
            .ops
            .iter()
            .enumerate()
            .filter(|(_, (_, op))| matches!(op, Op::Sync))
            .map(|(i, _)| i)
            .collect();
        ops += w.log.ops.len();
        syncs_total += syncs.len();
        let n = STATES_PER_WORKLOAD.min(total - stats.states);
        for _ in 0..n {
            let crash = crash_point(&w, &syncs, &mut rng);
            let (files, torn) = crash_image(&w.log, crash, &mut rng);
            torn_total += torn;
            check_image(&w, crash, &files, &dir, &mut stats);
        }
    }
    println!(
        "powerloss: {} crash states checked from {workloads} workloads \
         ({} steps each, {ops} recorded operations, {syncs_total} syncs; \
         {torn_total} torn writes) in {:.1} s; {:?}",
        stats.states,
        STEPS_PER_WORKLOAD,
        started.elapsed().as_secs_f64(),
        stats.by_outcome
    );
    assert_eq!(stats.states, total);
}
