//! Audit performance (issue 7), each figure reported as a ratio against a
//! baseline measured in the same run, because the machine is shared and noisy.
//!
//! Run: `cargo bench -p dbos-engine --bench audit`
//! Quick (a fast check): `DBOS_BENCH_QUICK=1 cargo bench -p dbos-engine --bench audit`
//! The databases go to a temporary folder (in `$DBOS_BENCH_DIR` if set, else
//! the system temporary folder); it should be on a real disk, since commits
//! are synced.
//!
//! Figures (no numeric goal; nothing here is a timed pass/fail):
//! 1. `Engine::verify` over 10^5 autocommitted transactions, against hashing
//!    the very same bytes with BLAKE3 alone: the inputs of `chain::chain_hash`
//!    and the bytes of every distinct file content (the content check), read
//!    into memory beforehand. The same for `verify_with(.., false, ..)`
//!    (`--no-content`) against `chain_hash` alone. Also shown: the database
//!    reads `verify` does without hashing, and the stray-row scan, to say
//!    where the time goes.
//! 2. `SELECT ... FROM files FOR SYSTEM_TIME AS OF T<n>` on a 100,000-file
//!    state with later history, against the engine's own as-of listing of
//!    the same moment (`view_at` + `list_space(Space::File)`, and `walk`).

mod support;
use support::*;

use dbos_engine::backend::Write;
use dbos_engine::chain::{chain_hash, tx_logs};
use dbos_engine::{Actor, Engine, Entry, Hash, LogEntry, Space, StoredLog, TxInfo, VPath};
use rusqlite::Connection;
use std::collections::HashSet;
use std::path::Path;
use std::time::{Duration, Instant};

/// Problem sizes; `DBOS_BENCH_QUICK=1` shrinks them.
struct Sizes {
    quick: bool,
    /// Autocommitted transactions to verify.
    verify_txs: usize,
    /// Directories of the as-of state, and files in each.
    dirs: usize,
    files_per_dir: usize,
    /// Directories written per build transaction.
    dirs_per_tx: usize,
    /// Later transactions, each rewriting this many files.
    later_txs: usize,
    later_files: usize,
    /// Further rewrites of every file, for the deep-history moment.
    rewrite_rounds: usize,
    /// Timed runs of each figure (the median is reported).
    runs: usize,
}

impl Sizes {
    fn from_env() -> Sizes {
        let quick = std::env::var("DBOS_BENCH_QUICK")
            .map(|v| !v.is_empty() && v != "0")
            .unwrap_or(false);
        if quick {
            Sizes {
                quick,
                verify_txs: 10_000,
                dirs: 10,
                files_per_dir: 1_000,
                dirs_per_tx: 5,
                later_txs: 3,
                later_files: 200,
                rewrite_rounds: 2,
                runs: 3,
            }
        } else {
            Sizes {
                quick,
                verify_txs: 100_000,
                dirs: 100,
                files_per_dir: 1_000,
                dirs_per_tx: 10,
                later_txs: 5,
                later_files: 2_000,
                rewrite_rounds: 9,
                runs: 5,
            }
        }
    }
}

// ----- small helpers ---------------------------------------------------------

fn db_size(path: &Path) -> u64 {
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    size(path) + size(Path::new(&wal))
}

/// One row of the printed table.
fn row(what: &str, value: String) {
    println!("  {what:<58} {value}");
}

// ----- 1: verify over many transactions --------------------------------------

/// What `verify` hashes for one transaction: `chain_hash`'s inputs, and
/// the bytes of each file content it wrote that no earlier transaction did
/// (the content check reads each distinct content once).
struct ChainInput {
    info: TxInfo,
    writes: Vec<Write>,
    logs: Vec<StoredLog>,
    /// (digest, bytes) of the contents first written here.
    contents: Vec<(Hash, Vec<u8>)>,
}

/// Read every transaction's hash inputs the way `verify` does (with
/// `content`, also the bytes of every distinct file content, through its
/// chunks).
fn read_inputs(engine: &mut Engine, head: u64, content: bool) -> BenchResult<Vec<ChainInput>> {
    let mut out = Vec::with_capacity(head as usize);
    let mut seen: HashSet<Hash> = HashSet::new();
    for id in 1..=head {
        let info = engine.tx_info(id)?;
        let b = engine.backend();
        let writes = b.tx_writes(id)?;
        let logs = tx_logs(b, &info)?;
        let mut contents = Vec::new();
        if content {
            for w in &writes {
                let Some(Entry::File { content, .. }) = &w.entry else {
                    continue;
                };
                if !seen.insert(content.digest) {
                    continue;
                }
                let mut bytes = Vec::with_capacity(content.size as usize);
                for r in content.chunks.iter() {
                    bytes.extend_from_slice(&b.read_chunk(*r)?);
                }
                contents.push((content.digest, bytes));
            }
        }
        out.push(ChainInput {
            info,
            writes,
            logs,
            contents,
        });
    }
    Ok(out)
}

/// Hash every input in chain order (with `content`, also BLAKE3 of every
/// distinct content); returns how many transactions matched.
fn hash_only(inputs: &[ChainInput], content: bool) -> usize {
    let mut prev: Hash = [0u8; 32];
    let mut ok = 0;
    for c in inputs {
        let h = chain_hash(&prev, &c.info, &c.writes, &c.logs);
        let mut good = h == c.info.hash;
        if content {
            for (digest, bytes) in &c.contents {
                good &= blake3::hash(bytes).as_bytes() == digest;
            }
        }
        if good {
            ok += 1;
        }
        prev = c.info.hash;
    }
    ok
}

fn bench_verify(dir: &Path, sz: &Sizes) -> BenchResult<()> {
    let path = dir.join("a1-verify.db");
    let mut engine = open_engine(&path)?;
    let actor = Actor::default();
    // A mix of what transactions write: mostly one small file, some config
    // rows, some a file plus a log row (so every kind of hashed row occurs).
    let start = Instant::now();
    for i in 0..sz.verify_txs {
        let (_, info) = engine.autocommit("main", &actor, "bench write", |tx| {
            match i % 10 {
                0 => tx.config_set(&format!("bench.k{}", i % 50), &format!("value {i}"))?,
                1 => {
                    tx.write_bytes(&vp(&format!("/f{}", i % 100)), format!("{i}\n").as_bytes())?;
                    tx.log(LogEntry {
                        time_us: i as i64,
                        source: "bench".to_string(),
                        severity: 6,
                        message: format!("wrote /f{} ({i})", i % 100),
                        process_id: None,
                    })?;
                }
                _ => tx.write_bytes(
                    &vp(&format!("/f{}", i % 100)),
                    format!("line {i}\n").as_bytes(),
                )?,
            }
            Ok(())
        })?;
        info.ok_or("a bench transaction recorded no change")?;
    }
    let build = start.elapsed();
    let head = engine.head()?;
    println!(
        "  info: built {} autocommitted transactions in {} ({:.0} tx/s), head T{head}, db {:.1} MiB",
        sz.verify_txs,
        fmt_dur(build),
        sz.verify_txs as f64 / build.as_secs_f64(),
        mib(db_size(&path))
    );

    // The hash inputs, read once before timing the hash-only baseline.
    let inputs = read_inputs(&mut engine, head, true)?;
    let hashed_rows: usize = inputs.iter().map(|c| c.writes.len() + c.logs.len()).sum();
    let contents: usize = inputs.iter().map(|c| c.contents.len()).sum();
    let content_bytes: usize = inputs
        .iter()
        .flat_map(|c| c.contents.iter().map(|(_, b)| b.len()))
        .sum();
    // Warm-up: one verify of each kind (page cache, statement cache).
    for content in [true, false] {
        let report = engine.verify_with(1, content, &mut |_, _| {})?;
        assert!(report.broken.is_none(), "verify found {:?}", report.broken);
        assert_eq!(report.checked, head, "verify checked every transaction");
    }

    let mut verify_t = Vec::new();
    let mut chain_t = Vec::new();
    let mut hash_t = Vec::new();
    let mut hash_chain_t = Vec::new();
    let mut reads_t = Vec::new();
    let mut stray_t = Vec::new();
    let mut info_t = Vec::new();
    let mut writes_t = Vec::new();
    let mut logs_t = Vec::new();
    let mut chunks_t = Vec::new();
    let mut scan_t = Vec::new();
    let raw = Connection::open(&path)?;
    let scans = || -> BenchResult<usize> { three_scans(&raw) };
    assert_eq!(
        scans()?,
        inputs.len() + hashed_rows,
        "the scans read every transaction, version and log row"
    );
    for run in 0..sz.runs {
        // Alternate the order so neither side always runs right after the other.
        let mut run_verify = |engine: &mut Engine| -> BenchResult<()> {
            for (content, out) in [(true, &mut verify_t), (false, &mut chain_t)] {
                let (report, d) = time(|| engine.verify_with(1, content, &mut |_, _| {}));
                let report = report?;
                assert!(report.broken.is_none(), "verify found {:?}", report.broken);
                assert_eq!(report.checked, head, "verify checked every transaction");
                out.push(d);
            }
            Ok(())
        };
        let mut run_hash = || {
            for (content, out) in [(true, &mut hash_t), (false, &mut hash_chain_t)] {
                let (ok, d) = time(|| hash_only(&inputs, content));
                assert_eq!(ok, inputs.len(), "every recomputed hash matches");
                out.push(d);
            }
        };
        if run % 2 == 0 {
            run_verify(&mut engine)?;
            run_hash();
        } else {
            run_hash();
            run_verify(&mut engine)?;
        }
        // Where verify's time goes: its chain reads without hashing, each
        // of its three per-transaction statements alone, the content reads
        // alone, and the stray-row scan it runs once; and the same rows
        // read by three streaming scans.
        let (r, d) = time(|| read_inputs(&mut engine, head, false));
        assert_eq!(r?.len(), inputs.len());
        reads_t.push(d);
        let (r, d) = time(|| -> BenchResult<()> {
            for id in 1..=head {
                engine.tx_info(id)?;
            }
            Ok(())
        });
        r?;
        info_t.push(d);
        let (r, d) = time(|| -> BenchResult<()> {
            for id in 1..=head {
                engine.backend().tx_writes(id)?;
            }
            Ok(())
        });
        r?;
        writes_t.push(d);
        let (r, d) = time(|| -> BenchResult<()> {
            for c in &inputs {
                tx_logs(engine.backend(), &c.info)?;
            }
            Ok(())
        });
        r?;
        logs_t.push(d);
        let (r, d) = time(|| -> BenchResult<usize> {
            let mut seen: HashSet<Hash> = HashSet::new();
            let mut n = 0;
            for c in &inputs {
                for w in &c.writes {
                    if let Some(Entry::File { content, .. }) = &w.entry {
                        if seen.insert(content.digest) {
                            for r in content.chunks.iter() {
                                n += engine.backend().read_chunk(*r)?.len();
                            }
                        }
                    }
                }
            }
            Ok(n)
        });
        assert_eq!(r?, content_bytes);
        chunks_t.push(d);
        let (s, d) = time(|| engine.backend().stray_row(1));
        assert!(s?.is_none(), "no stray rows in the bench database");
        stray_t.push(d);
        let (r, d) = time(scans);
        r?;
        scan_t.push(d);
    }
    let vm = median(&verify_t);
    let cm = median(&chain_t);
    let hm = median(&hash_t);
    let hcm = median(&hash_chain_t);
    let per_tx = |d: Duration| {
        format!(
            "{} ({}/tx, {:.0} tx/s)",
            fmt_dur(d),
            fmt_dur(d / head as u32),
            head as f64 / d.as_secs_f64()
        )
    };
    println!(
        "1. verify over {head} transactions ({hashed_rows} version and log rows, {contents} distinct \
         file contents of {:.2} MiB), median of {} runs:",
        mib(content_bytes as u64),
        sz.runs
    );
    row("Engine::verify(1) (chain + content check)", per_tx(vm));
    row(
        "baseline: chain_hash + BLAKE3 of each content, in memory",
        per_tx(hm),
    );
    row("ratio verify / hash-only", format!("{:.1}x", ratio(vm, hm)));
    row(
        "Engine::verify_with(1, false) (chain only, --no-content)",
        per_tx(cm),
    );
    row(
        "baseline: chain_hash of the same inputs, in memory",
        per_tx(hcm),
    );
    row(
        "ratio verify chain-only / chain_hash-only",
        format!("{:.1}x", ratio(cm, hcm)),
    );
    row(
        "info: chain reads alone (tx_info+tx_writes+tx_logs)",
        per_tx(median(&reads_t)),
    );
    row("info:   tx_info alone", per_tx(median(&info_t)));
    row("info:   tx_writes alone", per_tx(median(&writes_t)));
    row("info:   tx_logs alone", per_tx(median(&logs_t)));
    row(
        "info: content reads alone (read_chunk per chunk)",
        per_tx(median(&chunks_t)),
    );
    row(
        "info: verify's stray-row scan alone",
        fmt_dur(median(&stray_t)),
    );
    row(
        "info: chain rows in three ordered scans (rusqlite, raw)",
        per_tx(median(&scan_t)),
    );
    Ok(())
}

/// Every transaction, version (of its own branch) and log row, each table
/// read by one statement in transaction order, every column fetched but
/// not decoded: a lower bound for reading what the chain hashes.
fn three_scans(c: &Connection) -> BenchResult<usize> {
    let mut n = 0;
    for sql in [
        "SELECT id, branch_id, time_us, author, host, command, message, merge_branch_id, merge_tx, hash \
         FROM transactions ORDER BY id",
        "SELECT v.tx_id, k.space, k.path, v.kind, v.mode, v.uid, v.gid, v.size, v.mtime_ns, v.digest, \
         v.manifest, v.value FROM versions v JOIN keys k ON k.id = v.key_id \
         JOIN transactions t ON t.id = v.tx_id AND t.branch_id = v.branch_id ORDER BY v.tx_id",
        "SELECT tx_id, time_us, source, severity, message, process_id FROM log_entries \
         ORDER BY tx_id, id",
    ] {
        let mut stmt = c.prepare_cached(sql)?;
        let cols = stmt.column_count();
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            for i in 0..cols {
                std::hint::black_box(r.get_ref(i)?);
            }
            n += 1;
        }
    }
    Ok(n)
}

// ----- 2: FOR SYSTEM_TIME AS OF on a large state -----------------------------

use dbos_engine::audit::{SqlRows, SqlValue};

fn count_of(rows: &SqlRows) -> BenchResult<usize> {
    match rows.rows.first().and_then(|r| r.first()) {
        Some(SqlValue::Integer(n)) => Ok(*n as usize),
        other => Err(format!("count(*) gave {other:?}").into()),
    }
}

/// The path of file `n` of the state.
fn file_path(sz: &Sizes, n: usize) -> String {
    format!("/d{:03}/f{:04}", n / sz.files_per_dir, n % sz.files_per_dir)
}

/// Write every file of the state once more (`round` 0 creates them),
/// `dirs_per_tx` directories per transaction.
fn write_all(engine: &mut Engine, sz: &Sizes, round: usize) -> BenchResult<()> {
    let actor = Actor::default();
    let mut d = 0;
    while d < sz.dirs {
        let mut tx = engine.begin("main", &actor)?;
        for dd in d..(d + sz.dirs_per_tx).min(sz.dirs) {
            let dp = format!("/d{dd:03}");
            if round == 0 {
                tx.mkdir(&vp(&dp), false, 0o755)?;
            }
            for f in 0..sz.files_per_dir {
                let p = format!("{dp}/f{f:04}");
                // Rewrites of a removed file bring it back: fine.
                let body = format!("file {p} round {round}\n");
                tx.write_bytes(&vp(&p), body.as_bytes())?;
            }
        }
        tx.commit("bench build", None)?
            .ok_or("a build transaction recorded no change")?;
        d += sz.dirs_per_tx;
    }
    Ok(())
}

/// A few transactions that rewrite some files, remove a few and add a
/// directory: history after the first moment.
fn change_some(engine: &mut Engine, sz: &Sizes) -> BenchResult<()> {
    let actor = Actor::default();
    let total = sz.dirs * sz.files_per_dir;
    for t in 0..sz.later_txs {
        let mut tx = engine.begin("main", &actor)?;
        for k in 0..sz.later_files {
            let p = file_path(sz, (k * 7919 + t * 104_729) % total);
            tx.write_bytes(&vp(&p), format!("rewritten in round {t}: {p}\n").as_bytes())?;
        }
        for k in 0..10 {
            let p = vp(&file_path(sz, (k * 31 + t * 1_000 + 17) % total));
            if tx.stat(&p)?.is_some() {
                tx.remove(&p, false)?;
            }
        }
        tx.mkdir(&vp(&format!("/later{t}")), false, 0o755)?;
        tx.write_bytes(&vp(&format!("/later{t}/new")), b"new\n")?;
        tx.commit("bench later", None)?
            .ok_or("a later transaction recorded no change")?;
    }
    Ok(())
}

/// (path, size) of entries, sorted.
type Listing = Vec<(String, i64)>;

/// (path, size) of every entry as of `moment`: by SQL and by the engine.
fn as_of_sets(engine: &mut Engine, moment: u64) -> BenchResult<(Listing, Listing)> {
    let q = format!("SELECT path, size FROM files FOR SYSTEM_TIME AS OF T{moment}");
    let mut sql: Listing = engine
        .sql("main", None, &q)?
        .rows
        .into_iter()
        .map(|r| match (&r[0], &r[1]) {
            (SqlValue::Text(p), SqlValue::Integer(s)) => Ok((p.clone(), *s)),
            other => Err(format!("unexpected row {other:?}")),
        })
        .collect::<Result<_, _>>()?;
    sql.sort();
    let mut eng: Listing = engine
        .view_at("main", moment)?
        .list_space(Space::File)?
        .into_iter()
        .map(|(p, e)| (p, e.size() as i64))
        .collect();
    eng.sort();
    Ok((sql, eng))
}

/// Median times of one moment's figures.
struct AsOf {
    sql_count: Duration,
    sql_rows: Duration,
    list: Duration,
    walk: Duration,
    raw_rows: Duration,
    text: Duration,
}

/// Time the as-of queries and listings of `moment`, checking each gives
/// `expected` entries.
fn time_as_of(
    engine: &mut Engine,
    raw: &Connection,
    moment: u64,
    expected: usize,
    runs: usize,
) -> BenchResult<AsOf> {
    let q_count = format!("SELECT count(*) FROM files FOR SYSTEM_TIME AS OF T{moment}");
    let q_rows = format!("SELECT path, size FROM files FOR SYSTEM_TIME AS OF T{moment}");
    // The same SQL text on a plain, long-lived rusqlite connection: what
    // SQLite itself costs, without the engine's per-query connection.
    let text_rows = engine.sql_text("main", None, &q_rows)?;
    let raw_rows = || -> BenchResult<usize> {
        let mut stmt = raw.prepare_cached(&text_rows)?;
        let mut rows = stmt.query([])?;
        let mut n = 0;
        while let Some(r) = rows.next()? {
            let _: String = r.get(0)?;
            let _: i64 = r.get(1)?;
            n += 1;
        }
        Ok(n)
    };
    assert_eq!(raw_rows()?, expected);
    let (mut c_t, mut r_t, mut l_t, mut w_t, mut raw_t, mut text_t) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    for _ in 0..runs {
        let (r, d) = time(|| engine.sql("main", None, &q_count));
        assert_eq!(count_of(&r?)?, expected);
        c_t.push(d);
        let (r, d) = time(|| engine.sql("main", None, &q_rows));
        assert_eq!(r?.rows.len(), expected);
        r_t.push(d);
        let (r, d) = time(|| -> BenchResult<usize> {
            Ok(engine
                .view_at("main", moment)?
                .list_space(Space::File)?
                .len())
        });
        assert_eq!(r?, expected);
        l_t.push(d);
        let (r, d) = time(|| -> BenchResult<usize> {
            Ok(engine.view_at("main", moment)?.walk(&VPath::root())?.len())
        });
        assert_eq!(r?, expected);
        w_t.push(d);
        let (r, d) = time(raw_rows);
        assert_eq!(r?, expected);
        raw_t.push(d);
        let (r, d) = time(|| engine.sql_text("main", None, &q_rows));
        r?;
        text_t.push(d);
    }
    Ok(AsOf {
        sql_count: median(&c_t),
        sql_rows: median(&r_t),
        list: median(&l_t),
        walk: median(&w_t),
        raw_rows: median(&raw_t),
        text: median(&text_t),
    })
}

fn print_as_of(title: &str, f: &AsOf, expected: usize) {
    println!("{title}");
    let per = |d: Duration| format!("{} ({}/entry)", fmt_dur(d), fmt_dur(d / expected as u32));
    row(
        "sql: SELECT count(*) FROM files FOR SYSTEM_TIME AS OF",
        per(f.sql_count),
    );
    row(
        "sql: SELECT path, size FROM files FOR SYSTEM_TIME AS OF",
        per(f.sql_rows),
    );
    row("engine: view_at + list_space(Space::File)", per(f.list));
    row(
        "engine: view_at + walk(/) (directory listings)",
        per(f.walk),
    );
    row(
        "ratio sql count(*) / engine list_space",
        format!("{:.2}x", ratio(f.sql_count, f.list)),
    );
    row(
        "ratio sql path,size / engine list_space",
        format!("{:.2}x", ratio(f.sql_rows, f.list)),
    );
    row(
        "ratio sql path,size / engine walk",
        format!("{:.2}x", ratio(f.sql_rows, f.walk)),
    );
    row(
        "info: same SQL text on a warm rusqlite connection",
        per(f.raw_rows),
    );
    row("info: building the SQL text (sql_text)", fmt_dur(f.text));
}

fn bench_as_of(dir: &Path, sz: &Sizes) -> BenchResult<()> {
    let path = dir.join("a2-asof.db");
    let mut engine = open_engine(&path)?;
    let total_files = sz.dirs * sz.files_per_dir;
    let start = Instant::now();
    write_all(&mut engine, sz, 0)?;
    let moment = engine.head()?;
    change_some(&mut engine, sz)?;
    let build = start.elapsed();
    let head = engine.head()?;
    // Root + directories + files.
    let expected = 1 + sz.dirs + total_files;
    println!(
        "  info: built {} files in {} dirs ({} transactions) + {} later transactions \
         ({} rewrites each) in {}, moment T{moment}, head T{head}, db {:.1} MiB",
        total_files,
        sz.dirs,
        sz.dirs.div_ceil(sz.dirs_per_tx),
        sz.later_txs,
        sz.later_files,
        fmt_dur(build),
        mib(db_size(&path))
    );

    // Correctness, untimed: the same (path, size) set on both sides.
    let (sql_set, eng_set) = as_of_sets(&mut engine, moment)?;
    let walked = engine.view_at("main", moment)?.walk(&VPath::root())?.len();
    assert_eq!(sql_set.len(), expected, "SQL as-of row count");
    assert_eq!(eng_set.len(), expected, "engine as-of listing count");
    assert_eq!(walked, expected, "engine as-of walk count");
    assert_eq!(
        sql_set, eng_set,
        "SQL and engine give the same (path, size)"
    );
    drop((sql_set, eng_set));

    let raw = Connection::open(&path)?;
    let shallow = time_as_of(&mut engine, &raw, moment, expected, sz.runs)?;
    print_as_of(
        &format!(
            "2. FOR SYSTEM_TIME AS OF T{moment} on files ({expected} entries: {total_files} files, \
             {} dirs, root; one version each; head T{head}), median of {} runs:",
            sz.dirs, sz.runs
        ),
        &shallow,
        expected,
    );

    // Where the SQL time goes.
    let text_count = engine.sql_text(
        "main",
        None,
        &format!("SELECT count(*) FROM files FOR SYSTEM_TIME AS OF T{moment}"),
    )?;
    println!("  info: EXPLAIN QUERY PLAN of the count(*) statement:");
    let mut stmt = raw.prepare(&format!("EXPLAIN QUERY PLAN {text_count}"))?;
    let mut rows = stmt.query([])?;
    let mut depth: Vec<(i64, usize)> = Vec::new();
    while let Some(r) = rows.next()? {
        let id: i64 = r.get(0)?;
        let parent: i64 = r.get(1)?;
        let detail: String = r.get(3)?;
        while depth.last().is_some_and(|&(p, _)| p != parent) {
            depth.pop();
        }
        let level = depth.last().map(|&(_, l)| l + 1).unwrap_or(0);
        println!("    {}{detail}", "  ".repeat(level));
        depth.push((id, level));
    }
    drop(rows);
    drop(stmt);

    // Deeper history: rewrite every file `rewrite_rounds` more times, then
    // ask for the head (every file has that many versions before it).
    let start = Instant::now();
    for round in 1..=sz.rewrite_rounds {
        write_all(&mut engine, sz, round)?;
    }
    let deep = engine.head()?;
    let (sql_set, eng_set) = as_of_sets(&mut engine, deep)?;
    assert_eq!(
        sql_set, eng_set,
        "SQL and engine give the same (path, size)"
    );
    let deep_expected = eng_set.len();
    drop((sql_set, eng_set));
    let versions: i64 = raw.query_row("SELECT count(*) FROM versions", [], |r| r.get(0))?;
    println!(
        "  info: rewrote every file {} more times in {}: head T{deep}, {versions} versions, db {:.1} MiB",
        sz.rewrite_rounds,
        fmt_dur(start.elapsed()),
        mib(db_size(&path))
    );
    let deep_f = time_as_of(&mut engine, &raw, deep, deep_expected, sz.runs)?;
    print_as_of(
        &format!(
            "2b. the same at T{deep} ({deep_expected} entries, {} or more versions per file), \
             median of {} runs:",
            sz.rewrite_rounds + 1,
            sz.runs
        ),
        &deep_f,
        deep_expected,
    );
    // And the first moment again, now with all that history after it.
    let again = time_as_of(&mut engine, &raw, moment, expected, sz.runs)?;
    print_as_of(
        &format!(
            "2c. T{moment} again, with the deeper history after it, median of {} runs:",
            sz.runs
        ),
        &again,
        expected,
    );
    Ok(())
}

fn main() -> BenchResult<()> {
    let wanted = wanted_parts();
    let sz = Sizes::from_env();
    let dir = bench_dir()?;
    println!(
        "dbos-engine audit benchmarks ({} mode), databases in {}",
        if sz.quick { "quick" } else { "full" },
        dir.path().display()
    );
    let start = Instant::now();
    if wanted("1") {
        bench_verify(dir.path(), &sz)?;
    }
    if wanted("2") {
        bench_as_of(dir.path(), &sz)?;
    }
    println!("total time {}", fmt_dur(start.elapsed()));
    Ok(())
}
