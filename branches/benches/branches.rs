//! Branch performance goals (issue 5), each reported as a ratio measured in
//! one run, because the machine is shared and noisy.
//!
//! Run: `cargo bench -p dbos-branches --bench branches`
//! Quick: `DBOS_BENCH_QUICK=1 cargo bench -p dbos-branches --bench branches`
//! (10,000 files and 10^5 versions instead of 100,000 and 10^6, fewer
//! samples). Databases go to a temporary folder (in `$DBOS_BENCH_DIR` if set);
//! it should be on a real disk, since commits are synced. Arguments pick
//! goals: `cargo bench -p dbos-branches --bench branches -- 2 3`.
//!
//! Goals:
//! 1. Branch creation (`dbos_branches::create` at the tip of `main`, a new
//!    name each time) on a state of 100,000 files with 10^6 versions of
//!    history vs on a 10-file state: median ratio <= 1.5x.
//! 2. A point read (`view_at(branch, tip)` + `read_file`) on a branch five
//!    forks deep vs the same read on `main`, of files last written on `main`
//!    before the forks: median ratio <= 2x.
//! 3. Merge of two branches that each changed N different files of the
//!    100,000 (N = 100, then 1,000): time proportional to the changes
//!    (1,000/100 ratio about 10x or less), and the 1,000-change merge on a
//!    10,000-file state about as fast as on the 100,000-file one.

#[path = "../../engine/benches/support/mod.rs"]
mod support;
use support::*;

use dbos_branches::Strategy;
use dbos_engine::{Actor, Engine, TxId, VPath};
use std::path::Path;
use std::time::{Duration, Instant};

/// Problem sizes; `DBOS_BENCH_QUICK=1` shrinks them.
struct Sizes {
    quick: bool,
    /// Files of the large state, and versions of its history.
    big_files: usize,
    big_versions: usize,
    /// Files written per transaction while building a history.
    files_per_tx: usize,
    /// Files of the tiny state (goal 1).
    small_files: usize,
    /// Files of the mid-sized state (goal 3), with as many versions per file
    /// as the large one.
    mid_files: usize,
    creations: usize,
    read_batches: usize,
    reads_per_batch: usize,
    merge_changes: [usize; 2],
    merge_rounds: usize,
}

impl Sizes {
    fn from_env() -> Sizes {
        let quick = std::env::var("DBOS_BENCH_QUICK")
            .map(|v| !v.is_empty() && v != "0")
            .unwrap_or(false);
        if quick {
            Sizes {
                quick,
                big_files: 10_000,
                big_versions: 100_000,
                files_per_tx: 5_000,
                small_files: 10,
                mid_files: 2_000,
                creations: 60,
                read_batches: 6,
                reads_per_batch: 200,
                merge_changes: [100, 1_000],
                merge_rounds: 3,
            }
        } else {
            Sizes {
                quick,
                big_files: 100_000,
                big_versions: 1_000_000,
                files_per_tx: 10_000,
                small_files: 10,
                mid_files: 10_000,
                creations: 300,
                read_batches: 20,
                reads_per_batch: 500,
                merge_changes: [100, 1_000],
                merge_rounds: 15,
            }
        }
    }
}

// ----- helpers -----------------------------------------------------------------

/// The path of file `i`: 1,000 files per directory.
fn file_path(i: usize) -> VPath {
    vp(&format!("/s/d{:03}/f{:03}", i / 1000, i % 1000))
}

fn body(i: usize, round: usize) -> String {
    format!("file {i} version {round}\n")
}

/// xorshift64*: a deterministic generator without dependencies.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    /// `k` distinct numbers below `n`.
    fn distinct(&mut self, k: usize, n: usize) -> Vec<usize> {
        let mut seen = std::collections::HashSet::new();
        let mut out = Vec::with_capacity(k);
        while out.len() < k {
            let x = self.below(n);
            if seen.insert(x) {
                out.push(x);
            }
        }
        out
    }
}

/// A state of `files` files on `main` with `versions` versions in all:
/// explicit transactions of `per_tx` files each, first creating every file,
/// then rewriting them in order, round after round. File `i` ends as
/// `body(i, last_round(i))`.
struct State {
    engine: Engine,
    files: usize,
    versions: usize,
}

impl State {
    fn last_round(&self, i: usize) -> usize {
        // Version v (0-based) writes file v % files in round v / files.
        (self.versions - 1 - i) / self.files
    }
}

fn build_state(path: &Path, files: usize, versions: usize, per_tx: usize) -> BenchResult<State> {
    let mut engine = open_engine(path)?;
    let actor = Actor::default();
    let start = Instant::now();
    let mut v = 0;
    let mut transactions = 0;
    while v < versions {
        let mut tx = engine.begin("main", &actor)?;
        if v == 0 {
            tx.mkdir(&vp("/s"), false, 0o755)?;
            for d in 0..files.div_ceil(1000) {
                tx.mkdir(&vp(&format!("/s/d{d:03}")), false, 0o755)?;
            }
        }
        let end = (v + per_tx).min(versions);
        for w in v..end {
            let i = w % files;
            tx.write_bytes(&file_path(i), body(i, w / files).as_bytes())?;
        }
        tx.commit("build", None)?
            .ok_or("build commit recorded no transaction")?;
        transactions += 1;
        v = end;
    }
    let took = start.elapsed();
    println!(
        "  info: built {files} files, {versions} versions in {transactions} transactions in {} \
         ({:.0} versions/s)",
        fmt_dur(took),
        versions as f64 / took.as_secs_f64()
    );
    Ok(State {
        engine,
        files,
        versions,
    })
}

fn tip(engine: &mut Engine, branch: &str) -> BenchResult<TxId> {
    let b = engine.branch(branch)?;
    Ok(engine.branch_tip(&b)?)
}

// ----- goal 1: branch creation ---------------------------------------------------

fn goal_create(big: &mut State, small: &mut State, sz: &Sizes) -> BenchResult<()> {
    let mut big_t = Vec::new();
    let mut small_t = Vec::new();
    let warmup = 10;
    let tips = [
        tip(&mut big.engine, "main")?,
        tip(&mut small.engine, "main")?,
    ];
    for i in 0..warmup + sz.creations {
        // Alternate which goes first, so drifts hit both alike.
        for k in 0..2 {
            let (st, out, at) = if (i + k) % 2 == 0 {
                (&mut *big, &mut big_t, tips[0])
            } else {
                (&mut *small, &mut small_t, tips[1])
            };
            let name = format!("new{i}");
            let start = Instant::now();
            let info = dbos_branches::create(&mut st.engine, &name, "main", None)?;
            let took = start.elapsed();
            if info.fork_tx != Some(at) {
                return Err(format!("{name} forked at {:?}", info.fork_tx).into());
            }
            if i >= warmup {
                out.push(took);
            }
        }
    }
    let (mb, ms) = (median(&big_t), median(&small_t));
    let r = ratio(mb, ms);
    println!(
        "  info: creation p90: large {} small {}",
        fmt_dur(quantile(&big_t, 0.9)),
        fmt_dur(quantile(&small_t, 0.9))
    );
    println!(
        "goal 1 branch creation, median of {}: {} files / {} versions {} vs {} files {} | \
         {r:.2}x | goal <= 1.5x: {}",
        sz.creations,
        big.files,
        big.versions,
        fmt_dur(mb),
        small.files,
        fmt_dur(ms),
        verdict(r <= 1.5)
    );
    Ok(())
}

// ----- goal 2: point reads five forks deep ----------------------------------------

fn goal_deep_read(big: &mut State, sz: &Sizes) -> BenchResult<()> {
    let actor = Actor::default();
    let mut parent = "main".to_string();
    for d in 1..=5 {
        let name = format!("deep{d}");
        dbos_branches::create(&mut big.engine, &name, &parent, None)?;
        // Each level writes a file of its own, so every step of the lineage
        // has versions.
        let mut tx = big.engine.begin(&name, &actor)?;
        tx.write_bytes(&vp(&format!("/level{d}")), b"level\n")?;
        tx.commit("level", None)?;
        parent = name;
    }
    // main moves on after the forks (files the reads never ask for).
    let mut tx = big.engine.begin("main", &actor)?;
    tx.write_bytes(&vp("/after"), b"after the forks\n")?;
    tx.commit("after", None)?;

    let sides = [
        ("main", tip(&mut big.engine, "main")?),
        ("deep5", tip(&mut big.engine, "deep5")?),
    ];
    let depth = {
        let b = big.engine.branch("deep5")?;
        big.engine.lineage(&b, sides[1].1)?.steps.len()
    };
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut times = [Vec::new(), Vec::new()];
    let mut view_times = [Vec::new(), Vec::new()];
    for batch in 0..sz.read_batches + 1 {
        for k in 0..2 {
            let s = (batch + k) % 2;
            let (branch, at) = sides[s];
            for _ in 0..sz.reads_per_batch {
                let i = rng.below(big.files);
                let path = file_path(i);
                let start = Instant::now();
                let mut view = big.engine.view_at(branch, at)?;
                let viewed = start.elapsed();
                let bytes = view.read_file(&path)?;
                let took = start.elapsed();
                if bytes != body(i, big.last_round(i)).as_bytes() {
                    return Err(format!(
                        "{branch}: {path} read {:?}",
                        String::from_utf8_lossy(&bytes)
                    )
                    .into());
                }
                // The first batch warms the caches.
                if batch > 0 {
                    times[s].push(took);
                    view_times[s].push(viewed);
                }
            }
        }
    }
    let (mr, md) = (median(&times[0]), median(&times[1]));
    let r = ratio(md, mr);
    println!(
        "  info: p99 main {} deep {}; view_at alone: main {} deep {}; the deep lineage has \
         {depth} steps",
        fmt_dur(quantile(&times[0], 0.99)),
        fmt_dur(quantile(&times[1], 0.99)),
        fmt_dur(median(&view_times[0])),
        fmt_dur(median(&view_times[1]))
    );
    println!(
        "goal 2 point read (view_at + read_file), median of {} random files of {}: five forks deep {} \
         vs main {} | {r:.2}x | goal <= 2x: {}",
        times[0].len(),
        big.files,
        fmt_dur(md),
        fmt_dur(mr),
        verdict(r <= 2.0)
    );
    Ok(())
}

// ----- goal 3: merges in proportion to the changes -----------------------------------

/// One merge measured: the merge, and for reference the transaction that
/// wrote THEIRS' changes (same number of files).
struct MergeSample {
    merge: Duration,
    write: Duration,
}

/// Fork two branches from `main` and change `changes` different files on
/// each (one transaction each); gives the branch names and the files.
fn merge_pair(
    st: &mut State,
    tag: &str,
    changes: usize,
    rng: &mut Rng,
) -> BenchResult<(String, String, Vec<usize>, Duration)> {
    let actor = Actor::default();
    let (ours, theirs) = (format!("o-{tag}"), format!("t-{tag}"));
    dbos_branches::create(&mut st.engine, &ours, "main", None)?;
    dbos_branches::create(&mut st.engine, &theirs, "main", None)?;
    let picked = rng.distinct(2 * changes, st.files);
    let mut write = Duration::ZERO;
    for (branch, set) in [(&ours, &picked[..changes]), (&theirs, &picked[changes..])] {
        let start = Instant::now();
        let mut tx = st.engine.begin(branch, &actor)?;
        for &i in set {
            tx.write_bytes(
                &file_path(i),
                format!("file {i} changed on {branch}\n").as_bytes(),
            )?;
        }
        tx.commit("change", None)?;
        write = start.elapsed();
    }
    Ok((ours, theirs, picked, write))
}

/// Time merging THEIRS into OURS for a fresh pair.
fn timed_merge(
    st: &mut State,
    tag: &str,
    changes: usize,
    rng: &mut Rng,
) -> BenchResult<MergeSample> {
    let actor = Actor::default();
    let (ours, theirs, picked, write) = merge_pair(st, tag, changes, rng)?;
    let (mine, yours) = picked.split_at(changes);
    let start = Instant::now();
    let report = dbos_branches::merge(
        &mut st.engine,
        &ours,
        &theirs,
        &actor,
        "merge",
        Strategy::Refuse,
    )?;
    let took = start.elapsed();
    if report.tx.is_none() || report.applied.len() != changes {
        return Err(format!(
            "merge {tag}: {:?} applying {} keys, expected {changes}",
            report.tx.map(|t| t.id),
            report.applied.len()
        )
        .into());
    }
    // Spot check: one of theirs' files arrived, one of ours stayed.
    let head = st.engine.head()?;
    let mut view = st.engine.view_at(&ours, head)?;
    let (a, b) = (yours[0], mine[0]);
    if view.read_file(&file_path(a))? != format!("file {a} changed on {theirs}\n").as_bytes()
        || view.read_file(&file_path(b))? != format!("file {b} changed on {ours}\n").as_bytes()
    {
        return Err(format!("merge {tag}: wrong content after the merge").into());
    }
    Ok(MergeSample { merge: took, write })
}

/// The read side of a merge alone, for a fresh pair: `merge_base` and the
/// two `diff_lineages` (THEIRS' changes, then OURS').
fn timed_diffs(st: &mut State, tag: &str, changes: usize, rng: &mut Rng) -> BenchResult<Duration> {
    let (ours, theirs, _, _) = merge_pair(st, tag, changes, rng)?;
    let start = Instant::now();
    let ob = st.engine.branch(&ours)?;
    let tb = st.engine.branch(&theirs)?;
    let base = dbos_branches::merge_base(&mut st.engine, &ob, &tb)?;
    let (to, tt) = (st.engine.branch_tip(&ob)?, st.engine.branch_tip(&tb)?);
    let lt = st.engine.lineage(&tb, tt)?;
    let lo = st.engine.lineage(&ob, to)?;
    let n_t = st.engine.diff_lineages(&base, &lt)?.len();
    let n_o = st.engine.diff_lineages(&base, &lo)?.len();
    let took = start.elapsed();
    if n_t != changes || n_o != changes {
        return Err(format!("diffs {tag}: {n_t} and {n_o} changes, expected {changes}").into());
    }
    Ok(took)
}

fn goal_merge(big: &mut State, mid: &mut State, sz: &Sizes) -> BenchResult<()> {
    let [small_n, large_n] = sz.merge_changes;
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    // Three cases: (state, changes), interleaved round by round.
    let cases = [(0, small_n), (0, large_n), (1, large_n)];
    let mut merges: [Vec<Duration>; 3] = Default::default();
    let mut writes: [Vec<Duration>; 3] = Default::default();
    let mut diffs: [Vec<Duration>; 3] = Default::default();
    // Round 0 warms up and is not counted.
    for round in 0..=sz.merge_rounds {
        for (c, &(s, n)) in cases.iter().enumerate() {
            let st = if s == 0 { &mut *big } else { &mut *mid };
            let m = timed_merge(st, &format!("{c}-{round}"), n, &mut rng)?;
            let d = timed_diffs(st, &format!("d{c}-{round}"), n, &mut rng)?;
            if round > 0 {
                merges[c].push(m.merge);
                writes[c].push(m.write);
                diffs[c].push(d);
            }
        }
    }
    let med = |v: &[Vec<Duration>; 3]| [median(&v[0]), median(&v[1]), median(&v[2])];
    let (m, w, d) = (med(&merges), med(&writes), med(&diffs));
    for (c, &(s, n)) in cases.iter().enumerate() {
        println!(
            "  info: {} files, {n} changes a side: merge {} ({} per change; min {}, max {}); \
             merge_base + both diffs {}; writing {n} files in one transaction {} (merge/write {:.2}x)",
            if s == 0 { big.files } else { mid.files },
            fmt_dur(m[c]),
            fmt_dur(m[c] / n as u32),
            fmt_dur(quantile(&merges[c], 0.0)),
            fmt_dur(quantile(&merges[c], 1.0)),
            fmt_dur(d[c]),
            fmt_dur(w[c]),
            ratio(m[c], w[c])
        );
    }
    let growth = ratio(m[1], m[0]);
    let size = ratio(m[1], m[2]);
    let steps = (large_n / small_n) as f64;
    println!(
        "goal 3 merge, changes on both sides, median of {} rounds: {} files: {small_n} changes {}, \
         {large_n} changes {} | {large_n}/{small_n}: {growth:.2}x (goal <= ~{steps:.0}x: {}) | \
         {} files, {large_n} changes: {} | {}/{} files: {size:.2}x (goal ~1x, <= 1.5x: {})",
        sz.merge_rounds,
        big.files,
        fmt_dur(m[0]),
        fmt_dur(m[1]),
        verdict(growth <= steps * 1.1),
        mid.files,
        fmt_dur(m[2]),
        big.files,
        mid.files,
        verdict(size <= 1.5)
    );
    Ok(())
}

fn main() -> BenchResult<()> {
    let wanted = wanted_parts();
    let sz = Sizes::from_env();
    let dir = bench_dir()?;
    println!(
        "dbos-branches benchmarks ({} mode), databases in {}",
        if sz.quick { "quick" } else { "full" },
        dir.path().display()
    );
    let start = Instant::now();
    let per_file = sz.big_versions / sz.big_files;
    let mut big = build_state(
        &dir.path().join("big.db"),
        sz.big_files,
        sz.big_versions,
        sz.files_per_tx,
    )?;
    if wanted("1") {
        let mut small = build_state(
            &dir.path().join("small.db"),
            sz.small_files,
            sz.small_files,
            sz.files_per_tx,
        )?;
        goal_create(&mut big, &mut small, &sz)?;
    }
    if wanted("2") {
        goal_deep_read(&mut big, &sz)?;
    }
    if wanted("3") {
        let mut mid = build_state(
            &dir.path().join("mid.db"),
            sz.mid_files,
            sz.mid_files * per_file,
            sz.files_per_tx,
        )?;
        goal_merge(&mut big, &mut mid, &sz)?;
    }
    println!("total time {}", fmt_dur(start.elapsed()));
    Ok(())
}
